"""Latency of sparse-word search (``--mode sparse``) on a large index, in SQLite.

Sparse search sums ``chunk weight x query weight`` over the postings of the query's words
(:func:`retriever.index.sparse_terms.search`). A word found in most chunks brings most of the table
into that sum, so the cost grows with the index and with how common the query's words are.

The index is synthetic but shaped like the demo index's sparse words: Zipf-distributed
pseudo-words (``search_latency.synthetic_texts``, 120 per chunk), of which each distinct word
is kept with probability 0.58 (the demo index keeps 58 of ~100 distinct words per chunk) with
a weight drawn from the demo's range (0.05-2.9, mean ~1.9). Queries are 4 words of a random
chunk, as in search_latency's hybrid part, weighted alike. The query's LLM pass is not timed.

    python benchmarks/sparse_latency.py [--sizes 10000,100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import each, header, percentiles
from search_latency import synthetic_texts

from retriever.index import sparse_terms
from retriever.index.settings import bind
from retriever.index.store import Store
from retriever.index.tables import file_row


def build(idx: Path, texts: list[str], rng) -> int:
    rows = 0
    with Store.writer(idx) as store:
        bind(store, None, {"fingerprint": "synthetic", "config": {}}, 1, "Flat")
        with store.atomic():
            for start in range(0, len(texts), 1000):
                part = texts[start : start + 1000]
                chunks = [
                    {
                        "ordinal": i,
                        "text": t,
                        "start": 0,
                        "end": len(t),
                        "tokens": 120,
                        "vector": b"\0\0\0\0",
                    }
                    for i, t in enumerate(part)
                ]
                row = file_row(f"doc{start}.txt", 0, 0, None, "indexed", chunks=len(part))
                store.rows.write_file(row, None, chunks)
            postings = []
            for cid, text in zip(store.rows.chunk_ids().tolist(), texts, strict=True):
                for w in dict.fromkeys(text.split()):
                    if rng.random() < 0.58:
                        postings.append((cid, w, float(rng.uniform(0.05, 2.9))))
            store.rows.add_sparse_terms(postings)
            rows = len(postings)
        store.set_meta(sparse_scale=1.0)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    header()
    print("\n| chunks | postings | build s | p50 ms | p99 ms | max ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        rng = np.random.default_rng(0)
        texts = synthetic_texts(n, rng)
        with tempfile.TemporaryDirectory() as tmp:
            idx = Path(tmp) / "idx"
            t = time.perf_counter()
            rows = build(idx, texts, rng)
            built = time.perf_counter() - t
            queries = [
                {
                    w: float(rng.uniform(0.05, 2.9))
                    for w in rng.choice(texts[rng.integers(n)].split(), 4)
                }
                for _ in range(args.queries)
            ]
            with Store.open(idx) as store:
                sparse_terms.search(store, queries[0], 10)  # warm the page cache
                times = each(lambda q, st=store: sparse_terms.search(st, q, 50), queries)
            p50, p99 = percentiles(times)
            worst = max(times) * 1000
            print(
                f"| {n:,} | {rows:,} | {built:.0f} | {p50:.1f} | {p99:.1f} | {worst:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
