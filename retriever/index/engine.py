"""Where an index's chunks are searched: one interface, chosen once from the index's meta.

SQLite (``index.db``) is the source of truth for every engine: files, chunks, texts, vectors.
An engine holds what is *derived* from it for searching, keeps it in line (:meth:`Engine.sync`),
checks it (:meth:`Engine.verify`) and rebuilds it (:meth:`Engine.repair`), and answers the two
searches that depend on it: dense (vectors) and BM25 (words). Two engines exist:

* :class:`~retriever.index.faiss_engine.FaissEngine`: a FAISS file beside ``index.db``, with BM25
  from SQLite's FTS5 (the default);
* :class:`~retriever.index.milvus.MilvusEngine`: a Milvus collection (Milvus Lite, a server)
  mirroring the chunks, with Milvus's own BM25.

:func:`retriever.index.engines.engine_for` picks one from the index's meta (as txtai's
``ANNFactory`` picks an ANN backend), and :func:`retriever.index.engines.place` records where a
new one lives (``tpr index --milvus URI``). Nothing else in the package knows which engines
exist: the indexer, the searcher, the VectorStore and ``manage`` talk to this interface only, so
a third engine changes none of them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

Hits = list[tuple[int, float]]  # (chunk id, score), best first

MAX_QUERY_WORDS = 256  # a pasted document as a query is cut here: BM25 cost grows per word


def fts_words(query: str) -> list[str]:
    """The distinct word tokens of a query, lower-cased, in order (at most MAX_QUERY_WORDS):
    what every engine's BM25 is given."""
    return list(dict.fromkeys(re.findall(r"\w+", query.lower())))[:MAX_QUERY_WORDS]


class Engine(ABC):
    """One index's search engine, over an open :class:`~retriever.index.store.Store`.

    Readers (a Searcher) and writers (an index run, the VectorStore) each hold their own; the
    store's generation tells a reader when SQLite moved on.
    """

    name: ClassVar[str]
    # The derived structure of a rebuild must be complete before the rebuilt database takes
    # the old one's place (a Milvus collection searched by id), or may follow it (a file that
    # readers rebuild from SQLite while it is stale).
    fill_before_swap: ClassVar[bool] = False

    def __init__(self, store, key: object = None):
        self.store = store
        # what names this engine's place in the index's meta (engines.engine_key): a reader
        # chooses its engine again when the index's key no longer matches
        self.key = key

    # -- searching ------------------------------------------------------------------------

    @abstractmethod
    def dense_call(
        self, vector: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> Callable[[], Hits]:
        """The dense search as a call that touches no SQLite (everything it needs is fetched
        here), so hybrid search can run it on another thread while BM25 runs on this one."""

    def dense(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits:
        """Top-k chunk ids by inner product with ``vector``, among ``allowed`` (None: all)."""
        return self.dense_call(vector, k, allowed)()

    def select(self, flt, ids: Callable[[], np.ndarray | None]):
        """What a search filtered by ``flt`` (a :class:`~retriever.search.filters.Filter`, or
        None) passes to :meth:`dense_call` and :meth:`bm25` as ``allowed``: by default the
        chunk ids SQLite finds (``ids()``); an engine that filters natively returns its own
        form (Milvus: a boolean expression), so a filter matching most of the index is not a
        list of every id."""
        return ids()

    @abstractmethod
    def bm25(self, words: list[str], k: int, allowed: np.ndarray | None = None) -> Hits:
        """Top-k chunk ids by BM25 over ``words`` (:func:`fts_words` of the query)."""

    # -- keeping in line with SQLite --------------------------------------------------------

    @abstractmethod
    def sync(self) -> None:
        """Bring the derived structure in line with SQLite (a writer, before it closes)."""

    def sync_if_free(self) -> bool:
        """:meth:`sync` for a reader: only when no writer is at work (a writer syncs itself
        when it finishes). False when one is."""
        with self.store.lock.if_free() as held:
            if held:
                self.sync()
            return held

    @abstractmethod
    def verify(self) -> str | None:
        """What is wrong with the derived structure, or None (``tpr repair``'s checks)."""

    @abstractmethod
    def repair(self) -> None:
        """Rebuild the derived structure from SQLite, whatever its state."""

    @abstractmethod
    def is_current(self) -> bool:
        """Whether the derived structure was built from SQLite as it is now (cheap: stamps)."""

    @abstractmethod
    def write_through(self, store, before: int, after: int, removed, added, vectors) -> None:
        """A writer (``store``, holding the lock) changed a few chunks (the VectorStore): bring
        the structure from generation ``before`` to ``after``, through the writer's store."""

    # -- where it lives ---------------------------------------------------------------------

    def renewed(self) -> dict:
        """Meta for an index rebuilt from this one: the same kind of engine in the same place,
        empty (every vector changes). {} when the structure is simply rebuilt."""
        return {}

    def retire(self) -> None:  # noqa: B027 (nothing to let go of, by default)
        """Let go of what a replaced index used (after a rebuild or a move)."""

    @abstractmethod
    def describe(self) -> str:
        """The engine in words, for ``tpr info``."""

    def state(self, problem: str | None, writer: int | None) -> str:
        """The structure's state in words, with what to do about it."""
        if problem is None:
            return "current, checked"
        if writer is not None:
            return f"being rebuilt: an index run is in progress (PID {writer})"
        if problem == "missing or stale":
            return "stale: rebuilt from SQLite on the next search; `tpr repair` writes it"
        return f"{problem}: run `tpr repair`"

    def close(self) -> None:  # noqa: B027 (nothing held, by default)
        """Release what the engine holds (connections, caches)."""
