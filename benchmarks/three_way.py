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
from dataclasses import replace
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

from retriever import EmbedderConfig, beir
from retriever.baselines import MiniLMEmbedder, load_embedder
from retriever.embedder import combine_poolings
from retriever.models import cache_dir
from retriever.sparse import SparseEncoder, hidden_norm
from retriever.sts import default_data_dir

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
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
    ds = beir.load(args.data or default_data_dir() / "scifact")
    doc_ids, docs = list(ds.corpus), list(ds.corpus.values())
    splits = {"test": ds.split_queries("test"), "train": ds.split_queries("train")}
    t = time.perf_counter()
    bm25 = beir.BM25(ds.corpus)
    first = {s: bm25.run(q) for s, q in splits.items()}

    preset = EmbedderConfig.for_retrieval(
        args.model, max_length=args.max_length, batch_size=args.batch_size
    )
    embedder = load_embedder(replace(preset, pooling="last"))
    c = embedder.config
    rng = (c.tp_start, c.tp_exit)
    key = f"{embedder.document_fingerprint[:16]}-{ds.corpus_hash()}-L{c.output_layer}"
    grid: dict = {}

    def pooled(pool: str):
        def compute():
            if not grid:
                grid.update(
                    embedder.encode_grid(docs, [rng], [c.output_layer], ["last", "mean"], True)
                )
            return grid[(rng, c.output_layer, pool)]

        return beir.cached_vectors(cache_dir() / "eval", f"{key}-tp-{pool}", compute)

    doc_last = pooled("last")
    doc_vecs = combine_poolings([doc_last, pooled("mean")])
    texts = [t for q in splits.values() for t in q.values()]
    qg = embedder.encode_grid(
        texts, [rng], [c.output_layer], ["last", "mean"], templates=c.query_templates()
    )
    q_last = qg[(rng, c.output_layer, "last")]
    qv = combine_poolings([q_last, qg[(rng, c.output_layer, "mean")]])
    enc = SparseEncoder(embedder, scale=hidden_norm(embedder, docs[:32]))
    d_bags = enc.encode(docs, doc_last)
    q_bags = enc.encode(texts, q_last)
    if args.idf:
        df: dict[str, int] = {}
        for bag in d_bags:
            for w in bag:
                df[w] = df.get(w, 0) + 1
        n_docs = len(d_bags)
        idf = {w: float(np.log(n_docs / c)) for w, c in df.items() if c <= args.max_df * n_docs}
        q_bags = [{w: x * idf.get(w, 0.0) for w, x in bag.items()} for bag in q_bags]
    n_test = len(splits["test"])
    sl = {"test": slice(0, n_test), "train": slice(n_test, None)}
    dense = {s: beir.dense_run(doc_ids, doc_vecs, splits[s], qv[sl[s]]) for s in splits}
    sparse = {s: beir.sparse_run(doc_ids, d_bags, splits[s], q_bags[sl[s]]) for s in splits}
    # MiniLM dense in the same run: the peer every claim is measured against.
    m = MiniLMEmbedder()
    key = f"minilm-{m.fingerprint[:16]}-{ds.corpus_hash()}"
    m_docs = beir.cached_vectors(cache_dir() / "eval", key, lambda: m.encode(docs))
    m_q = m.encode(texts)
    minilm = {s: beir.dense_run(doc_ids, m_docs, splits[s], m_q[sl[s]]) for s in splits}
    print(f"runs ready in {time.perf_counter() - t:.0f}s; preset {args.model}, TP {list(rng)}\n")

    def ndcg(run, s):
        return beir.ndcg_at(run, ds.qrels[s])

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
