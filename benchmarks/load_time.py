"""Second-start time of the default model: ``TPEmbedder.load()`` in fresh processes.

Each start runs in a new Python process, imports included, after the one-time GGUF conversion.
Three kinds of start alternate, so their differences are measured in one run on the same
machine state (this VM's speed drifts by tens of percent within minutes):

* "later start": what every start after the first does (``<PST>`` vector cached, the
  conversion's tokenizer.json read natively by :func:`retriever.embed.models.converted_tokenizer`);
* "AutoTokenizer": the same, with the tokenizer built by ``AutoTokenizer`` as before;
* "<PST> computed": the cached ``<PST>`` vector deleted first, as on the first start after a
  conversion.

Target: a later start under 10 s.

    python benchmarks/load_time.py [--model gemma3-270m] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from machine import describe  # benchmarks/machine.py

from retriever.embed.models import resolve

CHILD = (
    "import time; t = time.perf_counter()\n"
    "from retriever import EmbedderConfig, TPEmbedder\n"
    "{prelude}"
    "TPEmbedder.load(EmbedderConfig(model={model!r}))\n"
    "print(time.perf_counter() - t)\n"
)
AUTO_TOKENIZER = (  # the loader as it was: transformers rebuilds the tokenizer class in Python
    "import retriever.embed.models as m\n"
    "from transformers import AutoTokenizer\n"
    "m.converted_tokenizer = lambda p: AutoTokenizer.from_pretrained(p, local_files_only=True)\n"
)


def start(model: str, prelude: str = "") -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(model=model, prelude=prelude)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {describe()}")
    entry = resolve(args.model).path  # converts once if needed, outside the timings
    start(args.model)  # a first start writes the <PST> cache and warms the page cache
    kinds = {"later start": "", "AutoTokenizer": AUTO_TOKENIZER, "<PST> computed": ""}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for label, prelude in kinds.items():
            if label == "<PST> computed":
                for f in entry.glob("pst-*.npy"):
                    f.unlink()
            times[label].append(start(args.model, prelude))
    print("\n| start | seconds, each run | median |\n|---|---|---:|")
    for label, ts in times.items():
        runs = ", ".join(f"{t:.2f}" for t in ts)
        print(f"| {label} | {runs} | {statistics.median(ts):.2f} |")


if __name__ == "__main__":
    main()
