"""What leaving common words out of the BM25 query costs in quality, on SciFact.

FTS5 scores every row that holds any query word, so a word found in a large share of the
chunks makes BM25 slow on large indexes while adding little to any score (its IDF is small).
``FaissEngine.informative_words`` drops words in more than half of the chunks (lossless: FTS5
clamps their IDF to ~0) and, on indexes of ``COMMON_MIN_CHUNKS`` chunks or more, words in more
than ``COMMON_FRACTION`` of them (not lossless). This script forces the second rule on for the
5,183 SciFact abstracts at several fractions and reports nDCG@10 on train and test queries with
the BM25 p50 time per query. The speed at 100k chunks is measured by ``search_latency.py``.

    python benchmarks/bm25_pruning.py [--data ../shared/data/scifact] [--fractions 1,0.25,0.1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

import retriever.index.faiss_engine as search
from retriever.evaluation import beir
from retriever.evaluation.sts import default_data_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--fractions", default="1,0.5,0.25,0.1,0.05")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    ds = beir.load(args.data or default_data_dir() / "scifact")
    bm25 = beir.BM25(ds.corpus)
    search.COMMON_MIN_CHUNKS = 0  # force the rule on at SciFact's size
    print(
        f"\nshipped: COMMON_FRACTION = {search.COMMON_FRACTION}\n\n"
        "| words kept: in at most this share of chunks | train nDCG@10 | test nDCG@10 "
        "| p50 ms/query |\n|---:|---:|---:|---:|"
    )
    for fraction in (float(x) for x in args.fractions.split(",")):
        search.COMMON_FRACTION = fraction
        bm25.searcher._df_generation = None  # forget cached document frequencies
        scores, times = [], []
        for split in ("train", "test"):
            queries = ds.split_queries(split)
            run = {}
            for q, text in queries.items():
                t = time.perf_counter()
                run[q] = [(bm25.doc_of[c], s) for c, s in bm25.searcher.bm25(text, 100)]
                times.append(time.perf_counter() - t)
            scores.append(beir.ndcg_at(run, ds.qrels[split]))
        print(
            f"| {fraction:g} | {scores[0]:.2f} | {scores[1]:.2f} "
            f"| {1000 * np.percentile(times, 50):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
