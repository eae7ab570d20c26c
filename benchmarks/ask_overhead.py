"""What `tpr ask` costs beyond the LLM's own time: retrieval (the index's default hybrid search,
query embedding included) and building the prompt, over the demo questions
(benchmarks/demo_questions.py), with the model already loaded (as `tpr serve` would hold it).

    tpr demo   # or any index of data/python-docs
    python benchmarks/ask_overhead.py --index python-docs
"""

from __future__ import annotations

import argparse
import statistics
import time

from demo_questions import QUESTIONS  # benchmarks/demo_questions.py
from machine import describe  # benchmarks/machine.py

from retriever.answer import messages_for, sources_of
from retriever.search.request import SearchRequest
from retriever.search.searcher import Searcher


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", default="python-docs")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    t = time.perf_counter()
    searcher = Searcher.open(args.index)
    load = time.perf_counter() - t
    retrieve, prompt, chars = [], [], []
    searcher.run(SearchRequest("warm up", k=args.k))
    for _ in range(args.rounds):
        for q, _files in QUESTIONS:
            t0 = time.perf_counter()
            results = searcher.run(SearchRequest(q, k=args.k))
            t1 = time.perf_counter()
            messages = messages_for(q, sources_of(results))
            t2 = time.perf_counter()
            retrieve.append((t1 - t0) * 1000)
            prompt.append((t2 - t1) * 1000)
            chars.append(sum(len(m["content"]) for m in messages))

    def p(xs, q):
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    print(describe())
    print(f"model load (once, not per question): {load:.1f} s")
    print("| part | p50 ms | p95 ms |\n|---|---:|---:|")
    print(f"| retrieval (hybrid, k={args.k}, query embedded) | {p(retrieve, .5):.1f} | "
          f"{p(retrieve, .95):.1f} |")  # fmt: skip
    print(f"| prompt (numbered sources) | {p(prompt, 0.5):.3f} | {p(prompt, 0.95):.3f} |")
    print(f"prompt size: {statistics.median(chars):.0f} characters (median), "
          f"{len(retrieve)} questions")  # fmt: skip
    searcher.close()


if __name__ == "__main__":
    main()
