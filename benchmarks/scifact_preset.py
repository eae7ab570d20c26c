"""SciFact with the retrieval preset: what the fusion experiments in this folder start from.

``dense_prf.py``, ``fusion_variants.py`` and ``three_way.py`` all need the same things: the corpus,
the test and train queries, BM25's runs, and the preset's document and query vectors (last-token and
mean poolings of one pass, at the preset's TP range and layer). Document vectors come from ``tpr
eval beir``'s cache (:func:`retriever.evaluation.beir.cached_vectors`, same key) when the preset ran
before with the same ``--max-length``; otherwise they are computed and cached (about 90 min on 2 CPU
cores for the full corpus).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retriever import EmbedderConfig
from retriever.embed.embedder import combine_poolings
from retriever.embed.factory import load_embedder
from retriever.embed.gguf import cache_dir
from retriever.evaluation import beir
from retriever.evaluation.sts import default_data_dir

SPLITS = ("test", "train")  # queries are embedded in this order, test first


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)


@dataclass
class Preset:
    """SciFact, BM25 and the preset's vectors; per-split dicts are keyed by :data:`SPLITS`."""

    ds: beir.BeirData
    doc_ids: list[str]
    docs: list[str]
    splits: dict[str, dict[str, str]]  # split -> query id -> text
    bm25: dict[str, beir.Run]  # split -> BM25's run
    embedder: object  # the preset with last pooling (both poolings come from its grid)
    doc_last: np.ndarray
    doc_mean: np.ndarray
    query_last: dict[str, np.ndarray]
    query_mean: dict[str, np.ndarray]

    @property
    def doc_vectors(self) -> np.ndarray:
        """The preset's document vectors (last+mean)."""
        return combine_poolings([self.doc_last, self.doc_mean])

    def query_vectors(self, split: str) -> np.ndarray:
        return combine_poolings([self.query_last[split], self.query_mean[split]])

    def ndcg(self, run: beir.Run, split: str) -> float:
        return beir.ndcg_at(run, self.ds.qrels[split])


def load(args: argparse.Namespace) -> Preset:
    """Everything the experiments share, from the arguments of :func:`add_arguments`."""
    ds = beir.load(args.data or default_data_dir() / "scifact")
    doc_ids, docs = list(ds.corpus), list(ds.corpus.values())
    splits = {s: ds.split_queries(s) for s in SPLITS}
    lexical = beir.BM25(ds.corpus)
    bm25 = {s: lexical.run(q) for s, q in splits.items()}

    config = EmbedderConfig.for_strategy(  # the TP preset these experiments were built on
        "tp", args.model, max_length=args.max_length, batch_size=args.batch_size
    )
    embedder = load_embedder(replace(config, pooling="last"))
    c = embedder.config
    rng = (c.tp_start, c.tp_exit)
    key = f"{embedder.document_fingerprint[:16]}-{ds.corpus_hash()}-L{c.output_layer}"
    grid: dict = {}

    def pooled(pool: str) -> np.ndarray:
        def compute():
            if not grid:  # one pass gives both poolings
                grid.update(
                    embedder.encode_grid(
                        docs, [rng], [c.output_layer], ["last", "mean"], show_progress_bar=True
                    )
                )
            return grid[(rng, c.output_layer, pool)]

        return beir.cached_vectors(cache_dir() / "eval", f"{key}-tp-{pool}", compute)

    texts = [t for s in SPLITS for t in splits[s].values()]
    qg = embedder.encode_grid(
        texts, [rng], [c.output_layer], ["last", "mean"], templates=c.query_templates()
    )
    n_test = len(splits["test"])
    cut = {"test": slice(0, n_test), "train": slice(n_test, None)}
    return Preset(
        ds,
        doc_ids,
        docs,
        splits,
        bm25,
        embedder,
        pooled("last"),
        pooled("mean"),
        {s: qg[(rng, c.output_layer, "last")][cut[s]] for s in SPLITS},
        {s: qg[(rng, c.output_layer, "mean")][cut[s]] for s in SPLITS},
    )
