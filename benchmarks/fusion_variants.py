"""Variants of the default hybrid's score fusion on SciFact, tuned on train, reported on test.

The shipped hybrid takes each side's top candidates, min-max normalises each side's scores over
its own candidates and adds them with a dense weight (BM25 at 1). Two things about that may
cost quality, and both are cheap to change in the product:

* **Holes.** A BM25 candidate outside the dense top-k counts 0 on the dense side, though its
  cosine is known (the vectors are stored). "fill" scores every BM25 candidate densely.
* **Normalisation.** Min-max hangs on the single best and worst candidates. "z" uses each side's
  mean and standard deviation over its candidates instead.

Each variant's dense weight is chosen on the 809 train queries; test is read once. Document
vectors come from ``tpr eval beir``'s cache when the preset ran before with ``--max-length 256``
(otherwise about 90 min on 2 CPU cores).

    python benchmarks/fusion_variants.py [--data ../shared/data/scifact] [--depths 50,100]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

from retriever import EmbedderConfig, beir
from retriever.baselines import load_embedder
from retriever.embedder import combine_poolings
from retriever.models import cache_dir
from retriever.sts import default_data_dir


def z_fusion(sides: dict[str, dict[str, float]], weights: dict[str, float]) -> list:
    fused: dict[str, float] = {}
    for side, hits in sides.items():
        if not hits:
            continue
        x = np.array(list(hits.values()))
        mu, sd = x.mean(), x.std()
        for d, s in hits.items():
            fused[d] = fused.get(d, 0.0) + weights[side] * ((s - mu) / sd if sd > 0 else 0.0)
    # A candidate missing from a side takes that side's lowest normalised score, not 0 (the
    # mean), so being absent never beats being present.
    for side, hits in sides.items():
        if hits:
            x = np.array(list(hits.values()))
            low = (x.min() - x.mean()) / x.std() if x.std() > 0 else 0.0
            for d in fused:
                if d not in hits:
                    fused[d] += weights[side] * low
    return sorted(fused.items(), key=lambda x: -x[1])


def minmax_fusion(sides: dict[str, dict[str, float]], weights: dict[str, float]) -> list:
    fused: dict[str, float] = {}
    for side, hits in sides.items():
        if not hits:
            continue
        x = np.array(list(hits.values()))
        lo, span = x.min(), x.max() - x.min()
        for d, s in hits.items():
            fused[d] = fused.get(d, 0.0) + weights[side] * ((s - lo) / span if span > 0 else 1.0)
    return sorted(fused.items(), key=lambda x: -x[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--depths", default="50,100")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    ds = beir.load(args.data or default_data_dir() / "scifact")
    doc_ids = list(ds.corpus)
    row = {d: i for i, d in enumerate(doc_ids)}
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

    def pooled(pool: str):
        def compute():
            raise SystemExit("run `tpr eval beir` with the preset first (document vectors)")

        return beir.cached_vectors(cache_dir() / "eval", f"{key}-tp-{pool}", compute)

    doc_vecs = combine_poolings([pooled("last"), pooled("mean")])
    texts = [t for q in splits.values() for t in q.values()]
    qg = embedder.encode_grid(
        texts, [rng], [c.output_layer], ["last", "mean"], templates=c.query_templates()
    )
    qv = combine_poolings([qg[(rng, c.output_layer, p)] for p in ("last", "mean")])
    n_test = len(splits["test"])
    sl = {"test": slice(0, n_test), "train": slice(n_test, None)}
    cos = {s: qv[sl[s]] @ doc_vecs.T for s in splits}  # [Q, D] exact dense scores
    print(f"vectors ready in {time.perf_counter() - t:.0f}s; preset {args.model}, TP {list(rng)}")

    def sides(s: str, depth: int, fill: bool) -> dict[str, dict[str, dict[str, float]]]:
        out = {}
        for i, q in enumerate(splits[s]):
            lex = dict(first[s].get(q, [])[:depth])
            top = np.argsort(-cos[s][i])[:depth]
            dense = {doc_ids[j]: float(cos[s][i, j]) for j in top}
            if fill:
                dense.update({d: float(cos[s][i, row[d]]) for d in lex})
            out[q] = {"dense": dense, "bm25": lex}
        return out

    def ndcg(run, s):
        return beir.ndcg_at(run, ds.qrels[s])

    print(
        f"BM25 nDCG@10: train {ndcg(first['train'], 'train'):.2f}, "
        f"test {ndcg(first['test'], 'test'):.2f}\n"
    )
    print("| depth | dense side | normalisation | weight (train) | train | test |")
    print("|---:|---|---|---:|---:|---:|")
    for depth in (int(x) for x in args.depths.split(",")):
        for fill in (False, True):
            cand = {s: sides(s, depth, fill) for s in splits}
            for norm, fuse in (("min-max", minmax_fusion), ("z-score", z_fusion)):

                def run(s, w, cand=cand, fuse=fuse):
                    return {
                        q: fuse(sd, {"dense": w, "bm25": 1.0})[:100] for q, sd in cand[s].items()
                    }

                grid = {w: ndcg(run("train", w), "train") for w in beir.DENSE_WEIGHTS}
                w = max(grid, key=lambda w: (grid[w], -w))
                label = "top-k + every BM25 candidate" if fill else "top-k"
                print(
                    f"| {depth} | {label} | {norm} | {w} | {grid[w]:.2f} "
                    f"| {ndcg(run('test', w), 'test'):.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
