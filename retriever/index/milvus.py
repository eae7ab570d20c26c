"""Milvus as an index's search engine (Milvus Lite file, Milvus Standalone or Distributed).

Design. An index directory's SQLite file stays the source of truth for files and chunks: the
per-file manifest, chunk text, offsets, citations and vectors. Milvus holds a *mirror* of the
chunks (id, vector, text, path, offsets, metadata) and answers dense, BM25 (its BM25 function on
the text field) and filtered searches. Why the manifest stays local:

* resumability rests on a transaction per group of files (a file is whole or absent); Milvus
  has no multi-row transactions, and SQLite gives them for free;
* the mirror is derived, like the FAISS file of a local index: it is keyed by SQLite's chunk ids
  (AUTOINCREMENT, never reused), so bringing it up to date is a set difference, and upserts by
  primary key make a repeated sync harmless. A run killed between SQLite's commit and Milvus's
  upsert leaves a stale stamp; the next run (or ``tpr repair``) deletes what SQLite no longer has
  and upserts what Milvus lacks: nothing lost, nothing duplicated;
* the price is that vectors are stored twice (SQLite and Milvus): 5 KiB per chunk at the
  default model's 1280 dimensions, ~5 GB per million chunks on the indexing machine.

The stamp (meta key ``milvus_synced``: generation, count, places, schema) says whether the mirror
matches SQLite. "places" is the index's count of files touched or renamed without new chunks
(``Store.places_changed``): their chunks keep their ids, so only the path and mtime the mirror
holds for filtering change, and a sync re-sends the chunks whose place differs.

Filters run inside Milvus as a boolean expression over the mirror's scalar fields
(:mod:`retriever.index.milvus_filter`), with the meaning of the SQL a local index runs; the few
filters no expression says the same way fall back to the ids SQLite finds (``id in [...]``).
A collection made before the scalar fields existed (schema 1) is searched by ids until its next
sync, which makes it again from SQLite (it is derived: nothing is lost).

Where Milvus differs from the local store (measured in tests/index/test_milvus.py and
benchmarks/milvus_vs_faiss.py): dense search is the same inner product (FLAT, IVF or HNSW);
BM25 is Milvus's own (its analyzer, k1 = 1.5, b = 0.75, and in Milvus Lite statistics per
segment), not SQLite FTS5's (Porter stemming, k1 = 1.2), so BM25 scores and near-ties differ;
hybrid search fuses the two lists with the product's own fusion in Python (not Milvus's
``hybrid_search`` rankers, whose RRF uses k = 60 over ranks and whose weighted ranker normalises
with arctan rather than min-max), so the measured default weights keep their meaning.

The token of a Milvus server comes from the environment (``TPR_MILVUS_TOKEN``), never from the
command line or the index directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import IndexLocationError
from . import milvus_filter
from .engine import Engine, Hits
from .milvus_collection import (  # noqa: F401 (re-exported: the engine's public names)
    BATCH,
    LITE_NAME,
    LOCAL,
    MAX_TEXT,
    TOKEN_ENV,
    Collection,
    MilvusError,
    Where,
    close_all,
    is_remote,
    resolve_uri,
)

log = logging.getLogger("retriever")

SCHEMA = 2  # the collection's fields: 2 added the filter fields (milvus_filter.SCALARS)


def _row(r: dict, vector: np.ndarray) -> dict:
    text = r["text"]
    if len(text.encode()) > MAX_TEXT:  # BM25 sees the first 64 KiB; the text stays in SQLite
        text = text.encode()[:MAX_TEXT].decode(errors="ignore")
    heading = r["heading"] or None
    return {
        "id": int(r["id"]),
        "vector": vector.tolist(),
        "text": text,
        "path": r["path"],
        "start": int(r["start"] or 0),
        "end": int(r["end"] or 0),
        "metadata": r["metadata"] or None,
        # the filter fields (milvus_filter.SCALARS)
        "lpath": milvus_filter.ascii_lower(r["path"]),
        "mtime": int(r["mtime_ns"]),
        "heading": heading,
        "lheading": heading.lower() if heading else None,
        "page": r["page"],
    }


def stamp(store) -> dict:
    """What the mirror must have been synced from to be current (meta ``milvus_synced``)."""
    return {
        "generation": store.generation(),
        "count": store.rows.chunk_count(),
        "places": store.places(),
        "schema": SCHEMA,
    }


def sync(store, full: bool = False) -> dict:
    """Bring the index's Milvus collection in line with SQLite; returns what changed.

    Args:
        store: an open :class:`~retriever.index.store.Store` of a Milvus index (the caller holds
            the writer lock, or no writer is active).
        full: compare the collection with SQLite even when the stamp says it is current.
    """
    engine = Collection(store.meta_value("milvus"))
    want_stamp = stamp(store)
    if store.meta_value("milvus_synced") == want_stamp and not full and engine.exists():
        return {"upserted": 0, "deleted": 0}
    if engine.exists() and not engine.has_scalars():
        engine.drop()  # made before the filter fields (schema 1): made again from SQLite
    if not engine.exists():  # a new index or target, a rebuild, or a collection dropped by hand
        engine.create(int(store.meta_value("dimension")))
    # Stale until the end, whatever happens in between; a sync killed half-way is finished by
    # the next one (the difference), never restarted from nothing.
    store.set_meta(milvus_synced={"generation": None, "count": None})
    want = store.rows.chunk_places()
    have = engine.places(store.rows.max_chunk_id())
    gone = set(have) - set(want)
    # missing, or moved / touched since (same id, same vector, a new path or mtime to filter on)
    send = sorted(cid for cid, place in want.items() if have.get(cid) != place)
    engine.delete(gone)
    for i in range(0, len(send), BATCH):
        part = send[i : i + BATCH]
        rows = store.rows.chunk_rows(part)
        vecs = store.rows.vectors(part)
        engine.upsert([_row(rows[cid], vecs[j]) for j, cid in enumerate(part)])
    if send or gone:
        engine.flush()
    store.set_meta(milvus_synced=want_stamp)
    return {"upserted": len(send), "deleted": len(gone)}


def verify(store, sample: int = 256) -> str | None:
    """What is wrong with the mirror, or None: its stamp, its ids and places, sampled vectors."""
    engine = Collection(store.meta_value("milvus"))
    if not engine.exists():
        return f"collection {engine.collection} is missing"
    if store.meta_value("milvus_synced") != stamp(store):
        return "missing or stale"
    want = store.rows.chunk_places()
    have = engine.places(store.rows.max_chunk_id())
    if set(have) != set(want):
        return "ids differ from SQLite"
    if have != want:
        return "paths or modification times differ from SQLite"
    ids = sorted(want)
    if ids:
        pick = [ids[i] for i in np.linspace(0, len(ids) - 1, min(sample, len(ids))).astype(int)]
        got = engine.vectors(pick)
        mine = store.rows.vectors(pick)
        for j, cid in enumerate(pick):
            if cid not in got or not np.allclose(got[cid], mine[j], atol=1e-6):
                return "vectors differ from SQLite"
    return None


class MilvusEngine(Engine):
    """The :class:`~retriever.index.engine.Engine` of an index searched in Milvus: its
    collection, kept in line with SQLite by :func:`sync` (see the module docstring).

    Args:
        store: the open index.
        target: the index's ``milvus`` meta value: ``{"uri": ..., "collection": ...}``.
    """

    name = "milvus"
    fill_before_swap = True  # readers search the collection by id: it must be whole first

    def __init__(self, store, target: dict):
        super().__init__(store, key=target)
        self.target = target
        self.collection = Collection(target)
        self._checked = None  # the generation at which the mirror was last found current

    @staticmethod
    def place(store, uri: str, root: Path) -> Engine | None:
        """Record the Milvus URI an index is searched at (a new place gets a new collection,
        filled from SQLite at the end of the run); returns the engine it leaves, if any."""
        uri = resolve_uri(uri, store.path)
        if not is_remote(uri) and Path(uri).is_relative_to(root):
            raise IndexLocationError(
                f"the Milvus Lite file {uri} lies inside the folder being indexed ({root}); "
                f"use --milvus {LOCAL} (kept in the index directory) or a path outside it"
            )
        old = store.meta_value("milvus")
        if old and old["uri"] == uri:
            return None
        store.set_meta(milvus=Collection.new_target(uri), milvus_synced=None)
        return MilvusEngine(store, old) if old else None

    def _fresh(self) -> Collection:
        """The collection, its mirror brought up to date first when SQLite moved on and no
        writer is at work (a writer syncs it itself when it finishes)."""
        now = (self.store.generation(), self.store.places())
        if now != self._checked:
            if not self.is_current():
                self.sync_if_free()
            self._checked = now
        return self.collection

    def select(self, flt, ids):
        """The filter as a Milvus expression (searched inside Milvus), or SQLite's ids where no
        expression means the same (see :mod:`retriever.index.milvus_filter`)."""
        if not flt:
            return None
        expression = milvus_filter.expression(flt)
        if expression is None or not self._fresh().has_scalars():
            return ids()
        return Where(expression)

    def dense_call(self, vector, k: int, allowed: np.ndarray | None):
        collection = self._fresh()
        return lambda: collection.dense(vector, k, allowed)

    def bm25(self, words: list[str], k: int, allowed: np.ndarray | Where | None = None) -> Hits:
        if not words or (isinstance(allowed, np.ndarray) and len(allowed) == 0):
            return []
        # Milvus's BM25 function, on the same words FTS5 would get
        return self._fresh().bm25(" ".join(words), k, allowed)

    def sync(self) -> None:
        sync(self.store)

    def repair(self) -> None:
        sync(self.store, full=True)

    def write_through(self, store, before: int, after: int, removed, added, vectors) -> None:
        sync(store)  # upserts what SQLite gained, deletes what it lost: by id difference

    def verify(self) -> str | None:
        return verify(self.store)

    def is_current(self) -> bool:
        return self.store.meta_value("milvus_synced") == stamp(self.store)

    def renewed(self) -> dict:
        return {"milvus": Collection.new_target(self.target["uri"]), "milvus_synced": None}

    def retire(self) -> None:
        """Drop the collection; an unreachable one is only logged (the old place may be gone)."""
        try:
            self.collection.drop()
        except Exception as e:
            log.warning("could not drop the old Milvus collection %s: %s", self.target, e)

    def describe(self) -> str:
        return f"Milvus {self.target['uri']} {self.target['collection']}"

    def state(self, problem: str | None, writer: int | None) -> str:
        if problem is None:
            return "current, ids and sampled vectors verified"
        return super().state(problem, writer)
