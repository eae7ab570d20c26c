"""What the FAISS file's checksum costs: opening it with and without hashing, at 100k and 1M.

    python benchmarks/faiss_integrity.py                  # 100k and 1M vectors, dim 1280
    python benchmarks/faiss_integrity.py --sizes 100000 --dim 640

An index stamps its FAISS file with a sha256 in SQLite when it writes it, and every open hashes
the bytes as FAISS reads them (retriever.index.vectors.read_hashed: one pass, no second read).
This measures, side by side in one run and alternating so the page cache treats both alike:
plain ``faiss.read_index`` against the hashed read, the same for writing, and the sampled
vector check that ``tpr repair`` adds (256 vectors read back from FAISS, compared with SQLite's
copies; here with an in-memory copy standing in for SQLite). The default dimension, 1280, is
the default model's retrieval preset (last+mean pooling over 640 hidden units), so the files are
the size a real index of that many chunks has. Vectors are random: file size and hashing speed
do not depend on their values.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from harness import alternate, header, median, save  # benchmarks/harness.py

from retriever.index.vectors import read_hashed, write_hashed


def build(n: int, d: int, factory: str):
    rng = np.random.default_rng(0)
    base = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexIDMap2(base)
    if not base.is_trained:
        index.train(rng.standard_normal((min(n, 64 * 1024), d)).astype(np.float32))
    for start in range(0, n, 50_000):  # in parts, so the vectors are never held twice
        part = rng.standard_normal((min(50_000, n - start), d)).astype(np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        index.add_with_ids(part, np.arange(start, start + len(part), dtype=np.int64))
    return index


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="Where to write the files (tmp).")
    args = ap.parse_args()
    header()
    lines = [
        f"sha256 of 256 MiB in memory: {hash_speed():.0f} MB/s\n",
        "| vectors | factory | file | read | read + sha256 | ratio | write | write + sha256 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in (int(s) for s in args.sizes.split(",") if s):
            factory = "Flat" if n < 50_000 else f"IVF{2 ** round(np.log2(4 * np.sqrt(n)))},Flat"
            index = build(n, args.dim, factory)
            lines.append(
                f"| {n:,} | {factory} | {measure(index, Path(tmp) / f'{n}.faiss', args.rounds)} |"
            )
            print(lines[-1], flush=True)
            sample_check(index, n)
            del index
    print(f"written to {save('faiss_integrity', chr(10).join(lines))}")


def measure(index, path: Path, rounds: int) -> str:
    """Median write and read times, plain and hashed, alternating round by round so both see
    the same page cache and the same noise."""
    t = alternate(
        {
            "plain_w": lambda: faiss.write_index(index, str(path)),
            "hashed_w": lambda: write_hashed(index, path),
            "plain_r": lambda: faiss.read_index(str(path)),
            "hashed_r": lambda: read_hashed(path),
        },
        rounds,
    )
    size = path.stat().st_size / 2**20
    r, h = median(t["plain_r"]), median(t["hashed_r"])
    return (
        f"{size:,.0f} MiB | {r:.2f} s | {h:.2f} s | {h / r:.2f} | "
        f"{median(t['plain_w']):.2f} s | {median(t['hashed_w']):.2f} s"
    )


def sample_check(index, n: int) -> None:
    """The part of ``tpr repair`` beyond the checksum: 256 vectors back from FAISS."""
    ids = np.random.default_rng(1).choice(n, 256, replace=False)
    t = time.perf_counter()
    with contextlib.suppress(RuntimeError):  # Flat needs no direct map
        faiss.extract_index_ivf(index).make_direct_map()
    np.stack([index.reconstruct(int(i)) for i in ids])
    print(f"  repair's 256-vector read-back at {n:,}: {time.perf_counter() - t:.2f} s")


def hash_speed() -> float:
    data = b"\x5a" * (256 * 2**20)
    t = time.perf_counter()
    hashlib.sha256(data).digest()
    return 256 * 2**20 / 1e6 / (time.perf_counter() - t)


if __name__ == "__main__":
    main()
