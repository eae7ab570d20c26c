"""LLM sparse words stored per chunk in SQLite, and searched there (opt-in: ``--sparse``).

A chunk's sparse vector (:mod:`retriever.embed.sparse`) needs only its text and its stored dense
vector: the dense vector of a ``last`` or ``last+mean`` pooling at the final layer holds the
last-token state, whose LM-head logits weight the text's words. So the words are *derived
data*, computed after embedding in a catch-up pass over the chunks that have none yet, a batch
per transaction. Nothing is re-embedded, an interrupted pass resumes where it stopped, and
turning the option on for an existing index fills it in.

Storage is one row per (chunk, word, weight) in ``sparse_terms`` (migration m004), indexed by
word: a query's words select their postings, and the score is the dot product
``sum(query weight x idf x chunk weight)`` over shared words, in SQL (:func:`idf_weighted`).
The logits' scale is fixed per index (``sparse_scale`` in meta, the median final hidden-state
norm of a few sentences), so chunk and query weights stay comparable.

Measured on SciFact test (benchmarks/three_way.py --idf --max-df 0.5): sparse alone scores 63.7
nDCG@10 (51.7 without IDF) where dense scores 40.2, BM25 68.7 and MiniLM 64.5. Fused with dense
and BM25 it gained 0.2 on train and 0.3 on test, lost on the demo questions, and costs a third
search per query (25 ms at 100k chunks). Hence opt-in, and weight 0 in the default hybrid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..embed.sparse import SparseEncoder, hidden_norm, stored_last_token
from ..errors import ConfigError

# Sentences whose median final-layer norm sets an index's logit scale (any ordinary text will
# do: the final norm keeps the norm nearly constant).
SCALE_SENTENCES = (
    "The committee approved the new budget after a long debate.",
    "Water boils at a lower temperature at high altitude.",
    "She opened the window to let the fresh air in.",
    "The function returns a list of the words in the string.",
    "Researchers measured the effect of the drug on blood pressure.",
    "A small dog was sleeping under the kitchen table.",
    "The train to the city leaves every twenty minutes.",
    "Import the module before calling any of its functions.",
)
BATCH = 256  # chunks per transaction of the catch-up pass


def encoder_for(embedder, scale: float | None = None) -> SparseEncoder:
    """A sparse encoder for this embedder; raises ConfigError naming the fix if it cannot."""
    if getattr(embedder, "backbone", None) is None:  # MiniLM, LangChain embeddings: no LM head
        model = getattr(getattr(embedder, "config", None), "model", "this embedder")
        raise ConfigError(
            f"sparse words come from an LLM's vocabulary head, and {model} has none; leave out "
            "--sparse (BM25 and hybrid search work on this index as they are)"
        )
    try:
        enc = SparseEncoder(embedder, scale=1.0)
    except ConfigError as e:
        raise ConfigError(
            f"{e}; sparse words cannot be stored for this index: build a new index with the "
            "final layer and last or last+mean pooling (--tp-preset does), or leave out --sparse"
        ) from None
    enc.scale = scale if scale is not None else hidden_norm(embedder, SCALE_SENTENCES)
    return enc


def query_bag(encoder: SparseEncoder, embedder, query: str, qvec: np.ndarray) -> dict[str, float]:
    """The query's own words weighted by the logits of its (already embedded) query vector."""
    last = stored_last_token(qvec, embedder.config.pooling, embedder.backbone.hidden_size)
    return encoder.encode([query], last)[0]


def pending(store) -> bool:
    """Whether any chunk still lacks its sparse words."""
    return store.rows.sparse_pending()


def catch_up(
    store, embedder, encoder: SparseEncoder, on_batch: Callable[[int], None] | None = None
) -> int:
    """Compute sparse words for every chunk that has none yet; returns how many were done."""
    c, hidden = embedder.config, embedder.backbone.hidden_size
    done, last = 0, -1
    while rows := store.rows.chunks_without_sparse(last, BATCH):
        vecs = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        bags = encoder.encode([r[1] for r in rows], stored_last_token(vecs, c.pooling, hidden))
        with store.atomic():
            store.rows.add_sparse_terms(
                [
                    (r[0], w, x)
                    for r, bag in zip(rows, bags, strict=True)
                    for w, x in (bag.items() or [("", 0.0)])
                ]
            )
        done += len(rows)
        last = rows[-1][0]
        if on_batch is not None:
            on_batch(len(rows))
    return done


MAX_DF = 0.5  # query words in more than this share of the chunks are left out


def idf_weighted(store, bag: dict[str, float]) -> dict[str, float]:
    """The query's word weights times ``log(N / df)``, df counted over the stored words.

    The small model weighs function words like content words ("the" averages 2.39 on the demo
    index, "split" 1.99), so plain dot products carry no IDF. With it, SciFact test nDCG@10 of
    sparse search rose from 51.7 to 63.5 (benchmarks/three_way.py --idf). Words found in more
    than half of the chunks (IDF below log 2) are left out: on SciFact that scored slightly
    higher on both train and test (``--max-df 0.5``), and such words pull most of the postings
    table into the sum. Their df is counted only up to that bound.
    """
    n = store.rows.chunk_count()
    bound = int(MAX_DF * n)
    out = {}
    for w, x in bag.items():
        if not w or x <= 0:
            continue
        df = store.rows.sparse_df(w, bound + 1)
        if 0 < df <= bound:
            out[w] = x * float(np.log(n / df))
    return out


def search(
    store, bag: dict[str, float], k: int, allowed: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """Top-k chunk ids by ``sum(query weight x idf x chunk weight)`` over shared words."""
    bag = idf_weighted(store, bag)
    if not bag or (allowed is not None and len(allowed) == 0):
        return []
    return store.rows.sparse_top(bag, k, allowed)
