"""Three-way score fusion on SciFact: the preset's dense vectors, its LLM sparse words, and BM25.

Issue 7 asks for a default hybrid at least 2 nDCG@10 points above BM25; the shipped hybrid (dense
preset x0.3 + BM25) is +0.72. The sparse words (PromptReps-style logits of the same pass) are
the model's strongest signal alone (51.7 vs dense 40.2), but fused with BM25 alone they added
less than dense. This measures both at once: weights (dense, sparse) are searched on *train*
queries with BM25 at 1 and reported on test, with the product's normalised-score fusion.

Document vectors come from ``tpr eval beir``'s cache when the same settings ran before (the
retrieval preset with ``--max-length 256``); otherwise they are computed (about 90 min on 2 CPU
cores for the full corpus).

    python benchmarks/three_way.py [--data ../shared/data/scifact]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np
import scifact_preset  # benchmarks/scifact_preset.py
from machine import describe  # benchmarks/machine.py

from retriever.embed.gguf import cache_dir
from retriever.embed.minilm import MiniLMEmbedder
from retriever.embed.sparse import SparseEncoder, hidden_norm
from retriever.evaluation import beir

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scifact_preset.add_arguments(ap)
    ap.add_argument(
        "--idf",
        action="store_true",
        help="Weight each query word by log(N / df) over the corpus's sparse words (the small "
        "model weighs function words like content words, so its scores carry no IDF).",
    )
    ap.add_argument(
        "--max-df",
        type=float,
        default=1.0,
        help="With --idf: leave out query words found in more than this share of documents.",
    )
    args = ap.parse_args()
    print(f"machine: {describe()}")
    t = time.perf_counter()
    p = scifact_preset.load(args)
    splits, first, doc_ids, docs = p.splits, p.bm25, p.doc_ids, p.docs
    c = p.embedder.config
    enc = SparseEncoder(p.embedder, scale=hidden_norm(p.embedder, docs[:32]))
    d_bags = enc.encode(docs, p.doc_last)
    q_bags = {s: enc.encode(list(splits[s].values()), p.query_last[s]) for s in splits}
    if args.idf:
        df: dict[str, int] = {}
        for bag in d_bags:
            for w in bag:
                df[w] = df.get(w, 0) + 1
        n_docs = len(d_bags)
        idf = {w: float(np.log(n_docs / n)) for w, n in df.items() if n <= args.max_df * n_docs}
        q_bags = {
            s: [{w: x * idf.get(w, 0.0) for w, x in bag.items()} for bag in bags]
            for s, bags in q_bags.items()
        }
    doc_vecs = p.doc_vectors
    dense = {s: beir.dense_run(doc_ids, doc_vecs, splits[s], p.query_vectors(s)) for s in splits}
    sparse = {s: beir.sparse_run(doc_ids, d_bags, splits[s], q_bags[s]) for s in splits}
    # MiniLM dense in the same run: the peer every claim is measured against.
    m = MiniLMEmbedder()
    key = f"minilm-{m.fingerprint[:16]}-{p.ds.corpus_hash()}"
    m_docs = beir.cached_vectors(cache_dir() / "eval", key, lambda: m.encode(docs))
    minilm = {
        s: beir.dense_run(doc_ids, m_docs, splits[s], m.encode(list(splits[s].values())))
        for s in splits
    }
    print(
        f"runs ready in {time.perf_counter() - t:.0f}s; preset {args.model}, "
        f"TP {[c.tp_start, c.tp_exit]}\n"
    )
    ndcg = p.ndcg

    def fused(s, wd, ws):
        runs = {"dense": dense[s], "sparse": sparse[s], "bm25": first[s]}
        return beir.fuse_runs(runs, {"dense": wd, "sparse": ws, "bm25": 1.0}, "score")

    for s in splits:
        print(
            f"{s}: BM25 {ndcg(first[s], s):.2f}, MiniLM {ndcg(minilm[s], s):.2f}, "
            f"dense {ndcg(dense[s], s):.2f}, sparse {ndcg(sparse[s], s):.2f}"
        )
    print("\n| dense w | sparse w | train nDCG@10 | test nDCG@10 |")
    print("|---:|---:|---:|---:|")
    scores = {}
    for wd, ws in itertools.product(WEIGHTS, WEIGHTS):
        train, test = (ndcg(fused(s, wd, ws), s) for s in ("train", "test"))
        scores[(wd, ws)] = (train, test)
        print(f"| {wd} | {ws} | {train:.2f} | {test:.2f} |", flush=True)
    # The LLM alone: its dense and sparse sides fused, no BM25 (sparse at 1, dense weighted).
    print("\n| LLM only: dense w (sparse 1, no BM25) | train nDCG@10 | test nDCG@10 |")
    print("|---:|---:|---:|")
    llm = {}
    for wd in (0.0, *beir.DENSE_WEIGHTS[1:]):
        runs = {s: {"dense": dense[s], "sparse": sparse[s]} for s in splits}
        llm[wd] = tuple(
            ndcg(beir.fuse_runs(runs[s], {"dense": wd, "sparse": 1.0}, "score"), s)
            for s in ("train", "test")
        )
        print(f"| {wd} | {llm[wd][0]:.2f} | {llm[wd][1]:.2f} |", flush=True)
    wd = max(llm, key=lambda w: (llm[w][0], -w))
    train, test = llm[wd]
    print(f"LLM only, chosen on train: dense x{wd} -> train {train:.2f}, test {test:.2f}")
    best = max(scores, key=lambda k: (scores[k][0], -sum(k)))
    print(
        f"\nchosen on train: dense x{best[0]}, sparse x{best[1]} -> "
        f"train {scores[best][0]:.2f}, test {scores[best][1]:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
