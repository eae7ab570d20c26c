"""The local engine: a FAISS file beside ``index.db`` for dense search, SQLite FTS5 for BM25.

The FAISS file is a derived cache. When it is written, SQLite's meta table records its stamp:
the generation (a counter bumped by every change to the chunks), the vector count it was built
from, and the file's sha256. Opening the file hashes it while FAISS reads it (one pass over the
bytes), so flipped bytes, a swapped id map or replaced vectors are caught, not searched. A
missing, stale or damaged file is rebuilt from SQLite; nothing is ever re-embedded for that.
Nothing is pickled: FAISS has its own binary format.

BM25 is SQLite FTS5 over chunk text with Porter stemming. The query's words are each quoted and
joined with OR, so FTS syntax in user input never reaches the parser. FTS5 scores every
matching row, so on large indexes words found in more than half of the chunks are left out of
the MATCH: FTS5 clamps their IDF to 1e-6, so they cannot change any score by more than that, but
they make nearly every row a candidate (a 7x slowdown at 100k chunks). From 20k chunks on, words
in more than a quarter of the chunks are left out as well (IDF below 1.1; not lossless, measured
in ``benchmarks/bm25_pruning.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable

import numpy as np

from . import vectors
from .engine import Engine, Hits
from .store import DB_NAME, FAISS_META, FAISS_NAME
from .vectors import factory_for

log = logging.getLogger("retriever")

# Below this many chunks every query word is kept: FTS5 is fast there, and the results stay
# exactly those of the full OR query.
PRUNE_MIN_CHUNKS = 1000
# From this many chunks on, words in more than COMMON_FRACTION of the chunks are left out too:
# their IDF is below log(3) ~ 1.1 (a rare word's is 5-11), yet each one makes FTS5 score a
# quarter of the index. Measured (benchmarks/bm25_pruning.py): 2x faster BM25 at 100k chunks,
# SciFact nDCG@10 +0.12 train / -0.23 test when forced on. Not lossless, hence large indexes only.
COMMON_MIN_CHUNKS = 20_000
COMMON_FRACTION = 0.25


def fts_query(words: list[str]) -> str | None:
    """Words -> a safe FTS5 query: quoted words joined by OR; None if no words."""
    return " OR ".join(f'"{w}"' for w in words) or None


class FaissEngine(Engine):
    """The FAISS file and FTS5 of one index (see the module docstring)."""

    name = "faiss"

    def __init__(self, store):
        super().__init__(store)
        self._index = None  # the loaded FAISS index, at _generation
        self._generation = None
        self._df: dict[str, int] = {}  # document frequency per query word, for this generation
        self._df_generation = None
        self._n_chunks = 0  # chunks at _df_generation

    # -- the FAISS file ---------------------------------------------------------------------

    def stamp(self) -> dict | None:
        return self.store.meta_value("faiss_file")

    def is_current(self) -> bool:
        """The FAISS file was built from SQLite as it is now (its bytes are checked on load)."""
        stamp, store = self.stamp(), self.store
        return bool(
            stamp
            and (store.path / FAISS_NAME).exists()
            and stamp.get("generation") == store.generation()
            and stamp.get("ntotal") == store.rows.chunk_count()
        )

    def build(self):
        """A FAISS index over every vector in SQLite (:func:`.vectors.build`), reusing the
        trained lists of an intact IVF file of the same shape."""
        store = self.store
        m = store.meta()
        n = store.rows.chunk_count()
        d = int(m["dimension"])
        factory = factory_for(m.get("faiss_factory", "Flat"), n)  # older indexes: always Flat
        stamp = self.stamp() or {}
        trained = vectors.reusable_ivf(store.path / FAISS_NAME, stamp.get("sha256"), factory, d)
        return vectors.build(store.rows.iter_vectors, n, d, factory, trained)

    def write(self, index=None) -> None:
        """Build (or take) the FAISS index, write it atomically and stamp it in SQLite.

        The old stamp goes first, so a crash between the two steps leaves a file that reads
        as stale (rebuilt quietly), never one that reads as damaged.
        """
        store = self.store
        index = index if index is not None else self.build()
        tmp = store.path / (FAISS_NAME + ".tmp")
        sha = vectors.write_hashed(index, tmp)
        store.set_meta(faiss_file=None)
        os.replace(tmp, store.path / FAISS_NAME)
        store.set_meta(
            faiss_file={
                "generation": store.generation(),
                "ntotal": int(index.ntotal),
                "sha256": sha,
            }
        )
        (store.path / FAISS_META).unlink(missing_ok=True)  # the stamp file of older versions

    def load(self):
        """The FAISS index: from the file when current and intact, else rebuilt from SQLite.

        A file whose bytes differ from the checksum recorded when it was written is damaged:
        it is rebuilt from SQLite and a warning says so (logger ``retriever``). A rebuilt index
        is written back when no writer is active, so the warning and the rebuild come once.
        """
        store = self.store
        stamp = self.stamp()
        damaged = None
        if self.is_current():
            try:
                index, sha = vectors.read_hashed(store.path / FAISS_NAME)
            except (RuntimeError, OSError):
                index, sha = None, "unreadable by FAISS"
            if index is not None and sha == stamp["sha256"] and index.ntotal == stamp["ntotal"]:
                return index
            if self.stamp() == stamp:  # not a writer replacing the file meanwhile
                damaged = "checksum mismatch" if index is not None else sha
        index = self.build()
        if damaged:
            log.warning(
                "%s is damaged (%s): rebuilt from %s, nothing re-embedded",
                store.path / FAISS_NAME,
                damaged,
                DB_NAME,
            )
        if not store.lock.writing:  # a writer writes the file itself at the end of its run
            with store.lock.if_free() as held:  # persist unless another writer is at work
                if held and self.stamp() == stamp:
                    with contextlib.suppress(OSError, sqlite3.Error):
                        self.write(index)
        return index

    @property
    def index(self):
        """The FAISS index as of the store's generation (loaded again when it moved on)."""
        gen = self.store.generation()
        if self._index is None or gen != self._generation:
            self._index = self.load()
            self._generation = gen
        return self._index

    def verify(self, sample: int = 256) -> str | None:
        """What is wrong with the FAISS file, or None: the stamp, the checksum, the id set
        against SQLite, and ``sample`` vectors read back from FAISS against SQLite's."""
        store = self.store
        if not self.is_current():
            return "missing or stale"
        try:
            index, sha = vectors.read_hashed(store.path / FAISS_NAME)
        except (RuntimeError, OSError):
            return "damaged (unreadable by FAISS)"
        if sha != self.stamp()["sha256"]:
            return "damaged (its checksum differs from the one recorded when it was written)"
        want = store.rows.chunk_ids()
        ids = vectors.ids_of(index)
        if ids is None or not np.array_equal(ids, want):
            return "ids differ from SQLite"
        if len(want):
            pick = np.random.default_rng().choice(want, min(sample, len(want)), replace=False)
            got = vectors.reconstruct(index, pick)
            if got is not None and not np.allclose(got, store.rows.vectors(pick), atol=1e-5):
                return "vectors differ from SQLite"
        return None

    def sync(self) -> None:
        if not self.is_current():
            self.write()

    def repair(self) -> None:
        self.write()

    def write_through(self, store, before: int, after: int, removed, added, embedded) -> None:
        """Patch the loaded index (when it is at ``before``) instead of rebuilding it, and
        write it through the writer's ``store``; an index type that cannot remove ids (HNSW)
        is rebuilt from SQLite."""
        writer = FaissEngine(store)
        index = self._index if self._generation == before else None
        if index is not None and not vectors.patch(index, removed, added, embedded):
            index = None
        if index is None or index.ntotal != store.rows.chunk_count():
            index = writer.build()
        writer.write(index)
        self.adopt(index, after)

    def adopt(self, index, generation) -> None:
        """Take an index a writer has just brought up to ``generation`` (no reload)."""
        self._index, self._generation = index, generation

    # -- searching --------------------------------------------------------------------------

    def dense_call(self, vector, k: int, allowed: np.ndarray | None) -> Callable[[], Hits]:
        return vectors.search_call(self.index, vector, k, allowed)

    def informative_words(self, words: list[str]) -> list[str]:
        """Drop words that occur in more than half of the chunks (IDF clamped to ~0 by FTS5),
        unless nothing would be left or the index is small (see :data:`PRUNE_MIN_CHUNKS`); on
        large indexes also those in more than :data:`COMMON_FRACTION` of the chunks, unless
        that would leave nothing."""
        store = self.store
        gen = store.generation()
        if gen != self._df_generation:
            self._df, self._df_generation = {}, gen
            self._n_chunks = store.rows.chunk_count()
        if self._n_chunks < PRUNE_MIN_CHUNKS or len(words) < 2:
            return words
        for w in words:
            if w not in self._df:
                self._df[w] = store.rows.fts_df(w)
        keep = [w for w in words if self._df[w] * 2 <= self._n_chunks] or words
        if self._n_chunks >= COMMON_MIN_CHUNKS:
            keep = [w for w in keep if self._df[w] <= COMMON_FRACTION * self._n_chunks] or keep
        return keep

    def bm25(self, words: list[str], k: int, allowed: np.ndarray | None = None) -> Hits:
        if not words or (allowed is not None and len(allowed) == 0):
            return []
        return self.store.rows.fts_top(fts_query(self.informative_words(words)), k, allowed)

    def describe(self) -> str:
        factory = self.store.meta_value("faiss_factory")
        built = factory_for(factory or "Flat", self.store.rows.chunk_count())
        return f"FAISS {factory}" + (f" = {built}" if built != factory else "")

    def state(self, problem: str | None, writer: int | None) -> str:
        if problem is None:
            return "current, checksum verified"
        return super().state(problem, writer)
