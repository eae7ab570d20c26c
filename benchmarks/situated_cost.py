"""Indexing CPU of situated chunks against today's preset, echo and MiniLM, side by side on a
quiet machine (benchmarks/situated.py's own CPU figures ran beside other work).

The first ``--docs`` passages of nq-utd, one file each, chunks of 128 tokens, each system
indexed twice in alternation (ABCD ABCD); reported: the median CPU seconds
(``time.process_time``) and wall seconds per system, and the ratio to MiniLM and to the preset.

    python benchmarks/situated_cost.py [--docs 150]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness import header, save
from situated import DATA, SYSTEMS, write

from retriever.embed.factory import load_embedder
from retriever.evaluation.beir import BeirData, load
from retriever.index.indexer import Indexer, IndexOptions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated labels")
    ap.add_argument("--save", default="situated_cost", help="results/NAME.md")
    args = ap.parse_args()
    header()
    data = load(DATA / "nq-utd")
    corpus = dict(list(data.corpus.items())[: args.docs])
    systems = {label: SYSTEMS[label] for label in args.systems.split(",")}
    embedders = {label: load_embedder(make()) for label, make in systems.items()}
    cpu: dict[str, list[float]] = {label: [] for label in systems}
    wall: dict[str, list[float]] = {label: [] for label in systems}
    chunks = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        write(folder, BeirData(corpus, {}, {}))
        for r in range(args.rounds):
            for i, (label, embedder) in enumerate(embedders.items()):
                index = Path(tmp) / f"ix-{r}-{i}"
                c, w = time.process_time(), time.perf_counter()
                report = Indexer(embedder, IndexOptions(chunk_size=128, overlap=16)).sync(
                    folder, index
                )
                cpu[label].append(time.process_time() - c)
                wall[label].append(time.perf_counter() - w)
                chunks[label] = report.chunks
                print(label, round(cpu[label][-1], 1), flush=True)
    med = {label: statistics.median(v) for label, v in cpu.items()}
    minilm, preset = med.get("all-MiniLM-L6-v2"), med.get(next(iter(SYSTEMS)))
    lines = [
        f"First {args.docs} nq-utd passages, chunks of 128 tokens, {args.rounds} rounds in "
        "alternation; median per system.",
        "",
        "| system | chunks | CPU s | wall s | vs MiniLM | vs today's preset |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in systems:
        vs_minilm = f"{med[label] / minilm:.1f}x" if minilm else ""
        vs_preset = f"{med[label] / preset:.2f}x" if preset else ""
        lines.append(
            f"| {label} | {chunks[label]} | {med[label]:.1f} | "
            f"{statistics.median(wall[label]):.1f} | {vs_minilm} | {vs_preset} |"
        )
    text = "\n".join(lines)
    print(text)
    save(args.save, text)


if __name__ == "__main__":
    main()
