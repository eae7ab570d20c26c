"""The Ray driver's peak memory while indexing, at two corpus sizes (issue 25, item 3).

Ray's workers read, chunk and embed their own files (:mod:`retriever.index.ray_index`); the
driver holds the manifest and the groups not yet committed. So its memory must not grow with
the corpus. Each size runs in a fresh process (a local Ray with 2 CPUs, 1 actor) that indexes a
folder of generated text files with a tiny randomly initialised Llama (the driver's memory is
mechanics, not the model's quality; a large model would only make the run slower). Reported:
the driver's resident memory after Ray and the model are up, its peak (VmHWM) over the run, and
the growth; beside it, the chunk text the driver held at once before this change (all of it).

    python benchmarks/ray_driver_memory.py [--sizes 250,1000] [--file-kb 4]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import header, save

ROOT = Path(__file__).resolve().parent.parent


def vm(key: str) -> int:
    """A /proc/self/status figure in MiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def child(folder: Path, model: Path, index: Path) -> None:
    from retriever import EmbedderConfig
    from retriever.embed.factory import load_embedder
    from retriever.embed.ray_job import RayOptions, start
    from retriever.index.indexer import Indexer, IndexOptions

    config = EmbedderConfig(model=str(model), tp_exit=3, device="cpu", dtype="float32")
    embedder = load_embedder(config)
    start(RayOptions())
    before = vm("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak counts from here (Linux >= 4.0)
    options = IndexOptions(chunk_size=480, ray=RayOptions(actors=1))
    report = Indexer(embedder, options).sync(folder, index)
    texts = 0
    from retriever.index.store import Store

    with Store.open(index) as s:
        texts = s.db.execute("select sum(length(text)) from chunks").fetchone()[0]
    print(
        json.dumps(
            {
                "before": before,
                "peak": vm("VmHWM"),
                "chunks": report.chunks,
                "files": report.added,
                "text_mb": texts / 2**20,
            }
        )
    )


def corpus(folder: Path, files: int, kb: int, rng: random.Random) -> None:
    words = [f"w{i}" for i in range(3000)]
    folder.mkdir(parents=True)
    for i in range(files):
        paras = []
        size = 0
        while size < kb * 1024:
            p = " ".join(rng.choice(words) for _ in range(60)) + "."
            paras.append(p)
            size += len(p) + 2
        (folder / f"doc{i:05}.txt").write_text("\n\n".join(paras))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="250,1000")
    ap.add_argument("--file-kb", type=int, default=4)
    ap.add_argument("--child", nargs=3, type=Path)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    header()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import build_model, make_tokenizer

    rows = []
    with tempfile.TemporaryDirectory(prefix="tpr-ray-mem-") as tmp:
        model = Path(tmp) / "tiny-llama"
        tok = make_tokenizer()
        build_model("llama", len(tok)).save_pretrained(model)
        tok.save_pretrained(model)
        for n in (int(x) for x in args.sizes.split(",")):
            folder = Path(tmp) / f"docs-{n}"
            corpus(folder, n, args.file_kb, random.Random(n))
            out = subprocess.run(
                [sys.executable, __file__, "--child", folder, model, Path(tmp) / f"ix-{n}"],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).parent,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((n, r))
            print(n, r, flush=True)
    lines = [
        "| files | chunks | chunk text | driver RSS before the run | driver peak | growth |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in rows:
        lines.append(
            f"| {n:,} | {r['chunks']:,} | {r['text_mb']:.1f} MiB | {r['before']} MiB | "
            f"{r['peak']} MiB | {r['peak'] - r['before']} MiB |"
        )
    text = "\n".join(lines)
    print(text)
    save("ray_driver_memory", text)


if __name__ == "__main__":
    main()
