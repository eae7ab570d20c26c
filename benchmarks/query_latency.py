"""Query latency on a real index with the default model, as the UI and `tpr search` see it.

Loads the index's embedder once (warm-up), then times each mode over a few queries: the median
and worst wall time per query, query embedding included.

    python benchmarks/query_latency.py --index python-docs
"""

from __future__ import annotations

import argparse
import time

from harness import each, header, median

from retriever.embed.factory import load_embedder
from retriever.index.settings import index_embedder_config
from retriever.index.store import Store, resolve_index
from retriever.search.searcher import Searcher

QUERIES = [
    "how does the with statement work",
    "what is a generator expression",
    "operator precedence of not and or",
    "how are decorators applied to functions",
    "difference between is and ==",
    "raise an exception from another one",
    "string formatting mini-language",
    "what does yield from do",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="python-docs")
    args = ap.parse_args()
    header()
    index = resolve_index(args.index)
    with Store.open(index) as s:
        config = index_embedder_config(s.meta())
        chunks = s.rows.chunk_count()
    t = time.perf_counter()
    searcher = Searcher(index, load_embedder(config))
    print(f"index {index}: {chunks} chunks; embedder loaded in {time.perf_counter() - t:.1f}s")
    searcher.search("warm up", k=5)
    print("\n| mode | median ms | max ms | queries |\n|---|---:|---:|---:|")
    for mode in ("hybrid", "dense", "bm25"):
        times = [s * 1000 for s in each(lambda q, m=mode: searcher.search(q, k=5, mode=m), QUERIES)]
        print(f"| {mode} | {median(times):.0f} | {max(times):.0f} | {len(times)} |")


if __name__ == "__main__":
    main()
