"""Where a cold start goes: a fresh process from its first import to the first query vector
(issue 24, item 7), the parts measured each in its own fresh process so none warms another.

* imports: ``retriever.search.searcher`` (pulls in torch through ``retriever/__init__``);
* tokenizer: the converted default model's tokenizer alone;
* modeling import: transformers' ``modeling_gemma3`` alone (after torch);
* open + load: ``Searcher.open`` on an index (model and tokenizer loaded together);
* first query: one dense search;
* ``tpr search`` one-shot, dense and BM25: the whole command in a fresh process (wall time,
  printing included), as a user runs it.

Run it once per tree to compare code versions on one machine (``PYTHONPATH=TREE``).

    python benchmarks/cold_start.py --index python-docs [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from machine import describe  # benchmarks/machine.py

CHILD = """
import json, time
t0 = time.perf_counter()
from retriever.search.searcher import Searcher
from retriever.search.request import SearchRequest
{patch}
t1 = time.perf_counter()
s = Searcher.open({index!r})
t2 = time.perf_counter()
s.run(SearchRequest("how do I split a string on whitespace", mode="dense"))
t3 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "open + load": t2 - t1, "first query": t3 - t2,
                  "total": t3 - t0}}))
"""
PARTS = """
import json, time
t = time.perf_counter()
import torch
torch_s = time.perf_counter() - t
from retriever.embed.models import resolve, converted_tokenizer
src = resolve("gemma3-270m")
t = time.perf_counter(); converted_tokenizer(src.path); tok = time.perf_counter() - t
t = time.perf_counter()
import transformers.models.gemma3.modeling_gemma3
mod = time.perf_counter() - t
print(json.dumps({"torch import alone": torch_s, "tokenizer alone": tok,
                  "modeling import alone": mod,
                  "floor: torch + modeling import": torch_s + mod}))
"""


def child(code: str, env: dict | None = None) -> dict:
    """The JSON line a fresh Python process running ``code`` prints last."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_shot(index: str, mode: str) -> float:
    """Wall seconds of ``tpr search`` in a fresh process (``python -m retriever``)."""
    cmd = [sys.executable, "-m", "retriever", "search", "how do I split a string on whitespace"]
    t = time.perf_counter()
    subprocess.run(
        [*cmd, "--index", index, "--mode", mode, "-k", "3"], check=True, capture_output=True
    )
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", default="python-docs")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    runs = [
        child(CHILD.format(index=args.index, patch=""))
        | child(PARTS)
        | {
            "tpr search one-shot, dense": one_shot(args.index, "dense"),
            "tpr search one-shot, bm25": one_shot(args.index, "bm25"),
        }
        for _ in range(args.rounds)
    ]
    print(describe())
    print(f"| part | median s | min s | max s |  ({args.rounds} fresh processes each)")
    print("|---|---:|---:|---:|")
    for key in runs[0]:
        xs = [r[key] for r in runs]
        print(f"| {key} | {statistics.median(xs):.2f} | {min(xs):.2f} | {max(xs):.2f} |")


if __name__ == "__main__":
    main()
