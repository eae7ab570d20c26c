"""Indexing through a Ray Data job against the in-process path, side by side in one run.

The first ``--limit`` SciFact documents are written one file per document and indexed with the
default model's retrieval preset three ways through the real indexer: in-process, and as a Ray
Data job on a local Ray with 1 and with 2 actors (each actor loads the model once). Reported:
wall seconds, chunks/s and the ratio to the in-process path. On one machine Ray cannot be faster
than the in-process path (the same cores do the same arithmetic); what it costs here is its
overhead: worker start, one model load per actor, moving texts and vectors between processes.

    python benchmarks/ray_speed.py [--limit 60] [--data ../shared/data/scifact]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness import header, save

from retriever import EmbedderConfig
from retriever.embed.factory import load_embedder
from retriever.embed.ray_job import RayOptions, start
from retriever.index.indexer import Indexer, IndexOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    header()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tpr-ray-") as tmp:
        root = Path(tmp) / "docs"
        root.mkdir()
        with (args.data / "corpus.jsonl").open() as f:
            for i, line in enumerate(f):
                if i >= args.limit:
                    break
                d = json.loads(line)
                (root / f"{d['_id']}.txt").write_text(f"{d.get('title', '')}\n\n{d['text']}")
        config = EmbedderConfig.for_retrieval(dtype=args.dtype)
        embedder = load_embedder(config)
        t = time.perf_counter()
        start(RayOptions())
        lines.append(f"local Ray started in {time.perf_counter() - t:.1f}s")
        rows = []
        for label, ray in (
            ("in-process", None),
            ("Ray Data, 1 actor", RayOptions(actors=1)),
            ("Ray Data, 2 actors", RayOptions(actors=2)),
        ):
            t = time.perf_counter()
            index_dir = Path(tmp) / f"index-{len(rows)}"
            report = Indexer(embedder, IndexOptions(ray=ray)).sync(root, index_dir)
            rows.append((label, time.perf_counter() - t, report.chunks))
            print(rows[-1], flush=True)
    base = rows[0][1]
    lines += [
        "",
        f"{args.limit} SciFact documents, retrieval preset, dtype {args.dtype}",
        "",
        "| path | wall s | chunks | chunks/s | time vs in-process |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, secs, chunks in rows:
        lines.append(
            f"| {label} | {secs:.1f} | {chunks} | {chunks / secs:.2f} | {secs / base:.2f}x |"
        )
    print("\n".join(lines[-len(rows) - 2 :]))
    save("ray_speed", "\n".join(lines))


if __name__ == "__main__":
    main()
