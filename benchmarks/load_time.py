"""Second-start time of the default model: ``TPEmbedder.load()`` in fresh processes.

Each start runs in a new Python process, imports included, after the one-time GGUF conversion.
Starts alternate between "cold" (the cached ``<PST>`` vector deleted first, so it is computed
from the embedding matrix as on the first start after a conversion) and "warm" (the cache file
present, as on every later start), so the difference is measured in one run on the same machine
state. Target: a later start under 10 s.

    python benchmarks/load_time.py [--model gemma3-270m] [--pairs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from machine import describe  # benchmarks/machine.py

from retriever.models import resolve

CHILD = (
    "import time; t = time.perf_counter()\n"
    "from retriever import EmbedderConfig, TPEmbedder\n"
    "TPEmbedder.load(EmbedderConfig(model={model!r}))\n"
    "print(time.perf_counter() - t)\n"
)


def start(model: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(model=model)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {describe()}")
    entry = resolve(args.model).path  # converts once if needed, outside the timings
    start(args.model)  # a first start writes the <PST> cache and warms the page cache
    times: dict[str, list[float]] = {"cold <PST>": [], "cached <PST>": []}
    for _ in range(args.pairs):
        for label in times:
            if label.startswith("cold"):
                for f in entry.glob("pst-*.npy"):
                    f.unlink()
            times[label].append(start(args.model))
    print("\n| start | seconds, each run | median |\n|---|---|---:|")
    for label, ts in times.items():
        runs = ", ".join(f"{t:.2f}" for t in ts)
        print(f"| {label} | {runs} | {statistics.median(ts):.2f} |")


if __name__ == "__main__":
    main()
