"""One BEIR evaluation run: every system on the same documents, hybrids tuned on train.

:mod:`retriever.evaluation.beir` has the data, metrics, runs and fusion; this module decides
what a run measures (``tpr eval beir`` is a thin wrapper):

* ``bm25``, always (the product's FTS5 search);
* per LLM in ``systems`` (``model:tp`` / ``model:vanilla``): dense runs for last-token, mean and
  last+mean pooling from one forward pass per variant, and, at the final layer, the
  PromptReps-style sparse vectors of the same pass (with and without expansion);
* ``minilm`` when listed and installed;
* every dense or sparse system fused with BM25 by weighted RRF and by normalised-score fusion,
  each weight chosen on the tuning split, plus equal-weight RRF for reference, and a three-way
  RRF (last-token dense, sparse, BM25) per LLM variant;
* every dense system as a re-ranker of BM25's top N, N chosen on the tuning split.

Document vectors are cached (:func:`retriever.evaluation.beir.cached_vectors`) under the embedder's
document-side fingerprint, so prompts for queries and re-runs reuse a corpus pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import TPRError
from . import beir

POOLS = ("last", "mean", "last+mean")


@dataclass
class Report:
    """Rows of metrics (test split) and the fusion weights chosen on the tuning split."""

    rows: list[dict] = field(default_factory=list)
    weights: dict = field(default_factory=dict)


def evaluate(
    ds: beir.BeirData,
    systems: list[tuple[str, str]],
    config,
    split: str = "test",
    tune_split: str = "train",
    sparse: bool = True,
    cache: Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> Report:
    """Measure ``systems`` (``[(model, "tp"|"vanilla"|"plain")]``) and BM25 in one run.

    Args:
        ds: the dataset.
        systems: LLM variants and ``("minilm", "plain")``.
        config: the ``EmbedderConfig`` whose settings every LLM uses (its model is replaced).
        split / tune_split: qrels reported / used to choose fusion weights.
        sparse: also score sparse vectors (final-layer last-token LLM variants only).
        cache: folder for cached document vectors (None = no cache).
        progress: progress bars while embedding.
        log: receives one-line progress messages.
    """
    test_q, train_q = ds.split_queries(split), ds.split_queries(tune_split)
    doc_ids, docs = list(ds.corpus), list(ds.corpus.values())
    q_texts = list(test_q.values()) + list(train_q.values())
    n_test = len(test_q)
    t = time.perf_counter()
    bm25 = beir.BM25(ds.corpus)
    runs = {"bm25": (bm25.run(test_q), bm25.run(train_q))}
    log(f"bm25 ready in {time.perf_counter() - t:.0f}s")

    def split_run(make) -> tuple[beir.Run, beir.Run]:
        return make(test_q, slice(0, n_test)), make(train_q, slice(n_test, None))

    fusable: list[str] = []
    three_way: list[tuple[str, str]] = []
    dense: dict = {}  # name -> (document vectors, query vectors), for re-ranking
    ctx = _Run(ds, q_texts, config, runs, split_run, dense, sparse, cache, progress, log)
    for model in dict.fromkeys(m for m, v in systems if v != "plain"):
        variants = [v for m, v in systems if m == model]
        names, sparse_names = _llm_runs(ctx, model, variants)
        fusable += names + sparse_names
        if sparse_names:
            three_way.append((names[0], sparse_names[0]))
    if ("minilm", "plain") in systems:
        try:
            from ..embed.minilm import MiniLMEmbedder

            m = MiniLMEmbedder()
            t0 = time.perf_counter()
            dv = beir.cached_vectors(
                cache,
                f"minilm-{m.fingerprint[:16]}-{ds.corpus_hash()}",
                lambda: m.encode(docs, show_progress_bar=progress),
            )
            qv = m.encode(q_texts)
            log(f"minilm: {time.perf_counter() - t0:.0f}s")
            runs["minilm"] = split_run(lambda qs, sl: beir.dense_run(doc_ids, dv, qs, qv[sl]))
            fusable.append("minilm")
            dense["minilm"] = (dv, qv)
        except TPRError as e:
            log(f"skipping MiniLM: {e}")
    report = _report(ds, runs, fusable, three_way, split, tune_split)
    _rerank_rows(report, ds, runs, dense, split, tune_split, n_test)
    return report


def _rerank_rows(report, ds, runs, dense, split, tune_split, n_test) -> None:
    """Each dense system re-ranking BM25's top N, N chosen on the tuning split."""
    doc_ids = list(ds.corpus)
    test_q, tune_q = ds.split_queries(split), ds.split_queries(tune_split)
    bm25_test, bm25_tune = runs["bm25"]
    for name, (dv, qv) in dense.items():
        n, grid = beir.choose_depth(
            bm25_tune, doc_ids, dv, tune_q, qv[n_test:], ds.qrels[tune_split]
        )
        report.weights.setdefault(name, {})["rerank"] = {"depth": n, "train_ndcg@10": grid}
        run = beir.rerank(bm25_test, doc_ids, dv, test_q, qv[:n_test], n)
        report.rows.append(
            {"system": f"rerank(bm25 top {n} by {name})", **beir.metrics(run, ds.qrels[split])}
        )


@dataclass
class _Run:
    """What every LLM of one evaluation shares; ``runs`` and ``dense`` collect the results."""

    ds: beir.BeirData
    q_texts: list[str]  # the test then the tuning queries, as ``split_run`` slices them
    config: Any
    runs: dict
    split_run: Callable
    dense: dict
    sparse: bool
    cache: Path | None
    progress: bool
    log: Callable[[str], None]


def _llm_runs(ctx: _Run, model: str, variants: list[str]) -> tuple[list[str], list[str]]:
    """Dense (and sparse) runs of one LLM; returns (dense names, sparse names)."""
    from ..embed.embedder import combine_poolings
    from ..embed.factory import load_embedder

    ds, runs, dense, log = ctx.ds, ctx.runs, ctx.dense, ctx.log
    doc_ids, docs = list(ds.corpus), list(ds.corpus.values())
    t0 = time.perf_counter()
    embedder = load_embedder(replace(ctx.config, model=model, tp=True))
    log(f"{model} loaded in {time.perf_counter() - t0:.1f}s")
    c = embedder.config
    rngs = [(c.tp_start, c.tp_exit) if v == "tp" else None for v in variants]
    key = f"{embedder.document_fingerprint[:16]}-{ds.corpus_hash()}-L{c.output_layer}"
    prompts = ""
    if c.query_templates() != c.templates():
        prompts = f" {'custom' if c.template else c.prompt}/{c.query_prompt or 'custom'}"

    def name(rng, pool) -> str:
        return f"{model} {'TP' if rng else 'vanilla'}{prompts} {pool}"

    def grid(texts, what, templates=None, ranges=rngs):
        t = time.perf_counter()
        out = embedder.encode_grid(
            texts,
            ranges,
            [c.output_layer],
            list(POOLS),
            show_progress_bar=ctx.progress,
            templates=templates,
        )
        log(f"{what}: {len(texts)} texts in {time.perf_counter() - t:.0f}s")
        return out

    doc_grid: dict = {}

    def doc_vectors(k):
        if k[2] == "last+mean":  # from the cached parts, no pass of its own
            return combine_poolings([doc_vectors((k[0], k[1], p)) for p in ("last", "mean")])

        def compute():
            if k not in doc_grid:  # one pass per TP range, only for ranges not cached
                doc_grid.update(grid(docs, "documents", ranges=[k[0]]))
            return doc_grid[k]

        tag = f"{'tp' if k[0] else 'vanilla'}-{k[2]}"
        return beir.cached_vectors(ctx.cache, f"{key}-{tag}", compute)

    q_grid = grid(ctx.q_texts, "queries", c.query_templates())
    names: list[str] = []
    for rng in rngs:
        for pool in POOLS:
            k = (rng, c.output_layer, pool)
            dv, qv = doc_vectors(k), q_grid[k]
            runs[name(rng, pool)] = ctx.split_run(
                lambda qs, sl, dv=dv, qv=qv: beir.dense_run(doc_ids, dv, qs, qv[sl])
            )
            names.append(name(rng, pool))
            dense[name(rng, pool)] = (dv, qv)
    sparse_names: list[str] = []
    if ctx.sparse and c.output_layer == embedder.backbone.num_layers and c.pooling == "last":
        from ..embed.sparse import SparseEncoder, hidden_norm

        t = time.perf_counter()
        enc = SparseEncoder(embedder, scale=hidden_norm(embedder, docs[:32]))
        for rng in rngs:
            k = (rng, c.output_layer, "last")
            for expand, label in ((0, "sparse"), (32, "sparse+expansion")):
                d_bags = enc.encode(docs, doc_vectors(k), expand=expand)
                q_bags = enc.encode(ctx.q_texts, q_grid[k], expand=expand)
                n = name(rng, label)
                runs[n] = ctx.split_run(
                    lambda qs, sl, d=d_bags, q=q_bags: beir.sparse_run(doc_ids, d, qs, q[sl])
                )
                sparse_names.append(n)
        log(f"sparse vectors: {time.perf_counter() - t:.0f}s")
    return names, sparse_names


def _report(ds, runs, fusable, three_way, split, tune_split) -> Report:
    report = Report()
    qrels, qrels_tune = ds.qrels[split], ds.qrels[tune_split]
    for name, (test_run, _) in runs.items():
        report.rows.append({"system": name, **beir.metrics(test_run, qrels)})
    bm25_test, bm25_tune = runs["bm25"]
    for name in fusable:
        report.weights[name] = {}
        for method, label in (("rrf", "RRF"), ("score", "score")):
            w, grid = beir.choose_weight(runs[name][1], bm25_tune, qrels_tune, method)
            report.weights[name][method] = {"weight": w, "train_ndcg@10": grid}
            fused = beir.fuse(runs[name][0], bm25_test, w, method)
            report.rows.append(
                {"system": f"hybrid {label}({name} x{w}, bm25)", **beir.metrics(fused, qrels)}
            )
        fused_eq = beir.fuse(runs[name][0], bm25_test, 1.0)
        report.rows.append(
            {"system": f"hybrid RRF({name} x1.0, bm25)", **beir.metrics(fused_eq, qrels)}
        )
    for a, b in three_way:
        (wa, wb), _ = beir.choose_weights3(runs[a][1], runs[b][1], bm25_tune, qrels_tune)
        report.weights[f"3-way {a} + {b}"] = {"rrf": {"weight": [wa, wb]}}
        fused = beir.fuse_runs(
            {"a": runs[a][0], "b": runs[b][0], "bm25": bm25_test}, {"a": wa, "b": wb, "bm25": 1.0}
        )
        report.rows.append(
            {"system": f"hybrid RRF({a} x{wa}, {b} x{wb}, bm25)", **beir.metrics(fused, qrels)}
        )
    return report
