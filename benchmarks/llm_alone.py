"""The LLM alone (its dense side + its own sparse words, no BM25) with the best dense sides.

Issue 19: the TP preset's dense vectors fused with the same pass's sparse words (PromptReps-style,
IDF-weighted, words in more than half of the documents left out, as ``--mode sparse`` does)
matched MiniLM on full SciFact. This re-measures that pair, and the same sparse words with echo's
dense side (the best LLM dense side in ``tp_family.py``; echo's own last token carries no
sparse words, so that pair needs two passes), on the tp_family data: SciFact's 1,500-document cut
(weights chosen on train) and nq-utd. Document vectors come from tp_family's cache.

    python benchmarks/llm_alone.py
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from tp_family import SYSTEMS, WEIGHTS, Data, encode_system

from retriever import EmbedderConfig, TPEmbedder
from retriever.embed.gguf import cache_dir
from retriever.embed.sparse import SparseEncoder, hidden_norm
from retriever.evaluation import beir
from retriever.evaluation.sts import default_data_dir
from retriever.index.sparse_terms import MAX_DF

LAYERS = [14, 16, 17, 18]  # as tp_family ran: the cache keys on the deepest one


def idf_bags(d_bags, q_bags):
    df: dict[str, int] = {}
    for bag in d_bags:
        for w in bag:
            df[w] = df.get(w, 0) + 1
    n = len(d_bags)
    idf = {w: float(np.log(n / c)) for w, c in df.items() if c <= MAX_DF * n}
    return [{w: x * idf.get(w, 0.0) for w, x in bag.items()} for bag in q_bags]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--cache", type=Path, default=cache_dir() / "eval")
    args = ap.parse_args()
    from harness import header

    header()
    from retriever.embed.minilm import MiniLMEmbedder

    minilm = MiniLMEmbedder()
    sets = [
        Data(
            "scifact", beir.load(args.data / "scifact", 1500), ["train", "test"], minilm, args.cache
        ),
        Data("nq-utd", beir.load(args.data / "nq-utd"), ["test"], minilm, args.cache),
    ]
    base = TPEmbedder.load(EmbedderConfig(batch_size=16))
    tp_settings = {**SYSTEMS["tp"], "output_layer": 18, "pooling": "last", "max_length": 256}
    tp = base.with_config(replace(base.config, **tp_settings))
    enc = SparseEncoder(tp, scale=hidden_norm(tp, sets[0].docs[:32]))
    rows = {}
    for d in sets:
        tp_docs, tp_q, _ = encode_system(base, SYSTEMS["tp"], LAYERS, d, args.cache, 256)
        echo_docs, echo_q, _ = encode_system(base, SYSTEMS["echo"], LAYERS, d, args.cache, 256)
        d_bags = enc.encode(d.docs, tp_docs[(18, "last")])
        dense = {
            "TP preset": (tp_docs[(18, "last+mean")], {}),
            "echo": (echo_docs[(16, "mean")], {}),
        }
        for s in d.splits:
            texts = list(d.queries[s].values())
            q_bags = idf_bags(d_bags, enc.encode(texts, tp_q[s][(18, "last")]))
            sparse = beir.sparse_run(d.doc_ids, d_bags, d.queries[s], q_bags)
            rows.setdefault(("sparse (IDF)", d.name, s), d.ndcg(sparse, s))
            for name, (dv, runs) in dense.items():
                qv = tp_q[s][(18, "last+mean")] if name == "TP preset" else echo_q[s][(16, "mean")]
                runs[s] = (beir.dense_run(d.doc_ids, dv, d.queries[s], qv), sparse)
        for name, (_, runs) in dense.items():
            rows[(name, d.name, "runs")] = runs
    sci, nq = sets
    out = {}
    for name in ("TP preset", "echo"):
        sci_runs, nq_runs = rows[(name, "scifact", "runs")], rows[(name, "nq-utd", "runs")]

        def fused(runs, s, w):
            dense, sparse = runs[s]
            return beir.fuse_runs(
                {"dense": dense, "sparse": sparse}, {"dense": w, "sparse": 1.0}, "score"
            )

        train = {w: sci.ndcg(fused(sci_runs, "train", w), "train") for w in WEIGHTS}
        w = max(train, key=lambda x: (train[x], -x))
        out[name] = {
            "weight": w,
            "train": train[w],
            "scifact/test": sci.ndcg(fused(sci_runs, "test", w), "test"),
            "nq-utd/test": nq.ndcg(fused(nq_runs, "test", w), "test"),
        }
    out["sparse alone"] = {
        "scifact/train": rows[("sparse (IDF)", "scifact", "train")],
        "scifact/test": rows[("sparse (IDF)", "scifact", "test")],
        "nq-utd/test": rows[("sparse (IDF)", "nq-utd", "test")],
    }
    out["minilm dense"] = {
        "scifact/train": sci.ndcg(sci.minilm["train"], "train"),
        "scifact/test": sci.ndcg(sci.minilm["test"], "test"),
        "nq-utd/test": nq.ndcg(nq.minilm["test"], "test"),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
