"""Search one index: dense (FAISS), lexical (SQLite FTS5 BM25), sparse, and hybrid fusions.

* **dense**: the query is embedded with the index's embedder (its query prompt); score = inner
  product of normalised vectors = cosine similarity, never outside [-1, 1].
* **bm25**: SQLite FTS5 over chunk text with Porter stemming. The query is reduced to its word
  tokens, each quoted and joined with OR, so FTS syntax (quotes, AND, NEAR, ``*``) in user input
  is matched as words and never reaches the parser. Score = -bm25() (higher is better). FTS5
  scores every matching row, so on large indexes words found in more than half of the chunks
  are left out of the MATCH: FTS5 clamps their IDF to 1e-6, so they cannot change any score by
  more than that, but they make nearly every row a candidate (a 7x slowdown at 100k chunks).
  From 20k chunks on, words in more than a quarter of the chunks are left out as well (IDF
  below 1.1; not lossless, measured in ``benchmarks/bm25_pruning.py``).
* **hybrid**: the top ``fetch_k`` of each side fused (:mod:`.fusion`). The method and weights
  default per embedder (:func:`retriever.embed.config.hybrid_default`): every measured default
  is score fusion with a small dense weight; rank fusion (``fusion="rrf"``) is the alternative.
* **sparse** (indexes built with ``--sparse``): the LLM's word weights, a dot product over the
  query's words (:mod:`retriever.index.sparse_terms`); with a positive ``"sparse"`` weight it is
  also a third side of hybrid.

Filters (:mod:`.filters`) are applied before ranking, so a search returns k results whenever k
chunks match. The store (:mod:`retriever.index.tables`) runs every SQL statement and
:mod:`retriever.index.vectors` every FAISS call; this module decides what to ask them.
"""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..embed.config import hybrid_default
from ..errors import ConfigError, EmptyInputError, IndexNotFoundError
from ..index import sparse_terms, vectors
from ..index.store import (
    ADDED,
    API_PREFIX,
    DB_NAME,
    IndexMismatchError,
    Store,
    db_error,
    file_identity,
)
from . import filters
from .filters import Filter
from .fusion import FUSE, FUSIONS

MODES = ("hybrid", "dense", "bm25", "sparse")
MAX_K = 10_000  # results (and fusion candidates) per search: more is a mistake, not a need
FOLDER_ID = re.compile(r"chunk-(\d+)")  # LangChain ids of folder chunks; reserved


class _Moved(KeyError):
    """A chunk id found by one side of a search is gone when its row is read."""


@dataclass
class Result:
    """One retrieved chunk with every score that led to it.

    ``doc_id`` is the id LangChain sees: the caller's id for a text added through the
    VectorStore, ``chunk-<chunk_id>`` for a chunk of a folder file. ``start_line`` /
    ``end_line`` (1-based) and ``heading`` (Markdown/reST heading path) say where it sits;
    :attr:`citation` is ``path:line``.
    """

    chunk_id: int
    text: str
    path: str
    ordinal: int
    start: int
    end: int
    page: int | None
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    doc_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    start_line: int | None = None
    end_line: int | None = None
    heading: str | None = None

    @property
    def citation(self) -> str:
        """``path:line`` (``path:first-last`` for a chunk over several lines)."""
        if self.start_line is None:
            return self.path
        last = f"-{self.end_line}" if self.end_line and self.end_line != self.start_line else ""
        return f"{self.path}:{self.start_line}{last}"

    def as_dict(self) -> dict:
        return {**self.__dict__, "citation": self.citation}


# Below this many chunks every query word is kept: FTS5 is fast there, and the results stay
# exactly those of the full OR query.
PRUNE_MIN_CHUNKS = 1000
# From this many chunks on, words in more than COMMON_FRACTION of the chunks are left out too:
# their IDF is below log(3) ~ 1.1 (a rare word's is 5-11), yet each one makes FTS5 score a
# quarter of the index. Measured (benchmarks/bm25_pruning.py): 2x faster BM25 at 100k chunks,
# SciFact nDCG@10 +0.12 train / -0.23 test when forced on. Not lossless, hence large indexes only.
COMMON_MIN_CHUNKS = 20_000
COMMON_FRACTION = 0.25


MAX_QUERY_WORDS = 256  # a pasted document as a query is cut here: BM25 cost grows per word


def fts_words(query: str) -> list[str]:
    """The distinct word tokens of a query, lower-cased, in order (at most MAX_QUERY_WORDS)."""
    return list(dict.fromkeys(re.findall(r"\w+", query.lower())))[:MAX_QUERY_WORDS]


def fts_query(query: str | list[str]) -> str | None:
    """User text (or words) -> a safe FTS5 query: quoted words joined by OR; None if no words."""
    words = fts_words(query) if isinstance(query, str) else query
    return " OR ".join(f'"{w}"' for w in words) or None


def check_k(value, name: str = "k") -> int:
    """A result count from a caller: an int in 1..MAX_K.

    Raises:
        ConfigError: anything else, with the allowed range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number, not {value!r}")
    if not 1 <= value <= MAX_K:
        raise ConfigError(f"{name} must be between 1 and {MAX_K}, not {value}")
    return int(value)


class Searcher:
    """Searches one index with the embedder it was built with.

    Args:
        index_dir: the index directory.
        embedder: a loaded embedder; its fingerprint must match the index's.

    Raises:
        IndexNotFoundError, IndexMismatchError: missing index or another embedder.
    """

    def __init__(self, index_dir: Path, embedder=None):
        self.index_dir = Path(index_dir)
        self.store = Store.open(index_dir)
        self.embedder = embedder
        self._read_meta()
        self._faiss = None
        self._faiss_generation = None
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None  # hybrid's dense side, made on first use
        self._sparse = None  # the sparse encoder, made on the first sparse search
        self._df: dict[str, int] = {}  # document frequency per query word, for this generation
        self._df_generation = None
        self._n_chunks = 0  # chunks at _df_generation
        # Cosine scores are clipped to [-1, 1]: float error can pass 1 by 1e-7, and no score
        # outside the cosine's range may ever leave a dense search (indexes that store
        # unnormalised vectors on purpose keep their raw inner products).
        self._cosine = bool((self.meta.get("embedder") or {}).get("normalize", True))
        self._milvus = None  # the Milvus mirror of a Milvus index, made on first use
        self._milvus_generation = None

    @classmethod
    def open(cls, index, embedder=None, load=None, need_embedder: bool = True) -> Searcher:
        """Open an index (a path or a bare name) with the embedder it was built with: the one
        given, else the index's own, loaded here (as simonw/llm's ``Collection.model()``).

        Args:
            load: the loader for the index's own embedder (default
                :func:`~retriever.embed.factory.load_embedder`; the CLI's reports timing, the
                server's shares one model between indexes with the same settings).
            need_embedder: False opens without loading one when none is given (BM25 only).

        Raises:
            IndexNotFoundError, IndexMismatchError: as :class:`Searcher`.
            ConfigError: the index was built with LangChain embeddings that cannot be loaded
                by name (pass them as ``embedder``).
        """
        from ..index.settings import load_index_embedder
        from ..index.store import resolve_index

        index_dir = resolve_index(index)
        if embedder is None and need_embedder:
            embedder = load_index_embedder(index_dir, load)
        return cls(index_dir, embedder)

    def _read_meta(self) -> None:
        """The index's settings as of now; refused if they name another embedder."""
        self.meta = self.store.meta()
        self._meta_generation = self.meta.get("generation")
        embedder = self.embedder
        accepted = (
            {embedder.fingerprint, *getattr(embedder, "previous_fingerprints", ())}
            if embedder is not None
            else set()
        )
        if embedder is not None and self.meta.get("fingerprint") not in accepted:
            raise IndexMismatchError(
                f"index {self.index_dir} was built with embedder "
                f"{str(self.meta.get('fingerprint', ''))[:12]}, not {embedder.fingerprint[:12]}; "
                f"load it with the index's settings ({self.meta.get('embedder')})"
            )

    def follow(self) -> None:
        """Keep up with the index on disk (each search calls it; a stat and one small read).

        * ``index.db`` deleted and made anew (another inode): reopen it; deleted and not
          replaced: :class:`IndexNotFoundError`, never answers from the deleted file.
        * a new generation: re-read the settings, so a rebuild that moved the index to a new
          Milvus collection (or another embedder, refused) is seen at once.
        """
        identity = file_identity(self.index_dir)
        if identity != self.store.identity:
            if identity is None:
                raise IndexNotFoundError(
                    f"index {self.index_dir} is gone: its {DB_NAME} was deleted. Rebuild it with "
                    f"`tpr index FOLDER --index {self.index_dir}`"
                )
            fresh = Store.open(self.index_dir)
            old, self.store = self.store, fresh
            old.close()
            self._faiss = self._faiss_generation = None
            self._milvus = self._milvus_generation = None
            self._df_generation = None
            self._read_meta()
        elif self.store.generation() != self._meta_generation:
            self._read_meta()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
        self.store.close()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tpr-dense")
        return self._executor

    def default_hybrid(self) -> tuple[str, dict[str, float]]:
        """(fusion method, weights) of the hybrid default for this index's embedder
        (:func:`hybrid_default`)."""
        config = getattr(self.embedder, "config", None)
        settings = (
            asdict(config) if is_dataclass(config) else {"model": getattr(config, "model", None)}
        )
        method, dense = hybrid_default(settings)
        return method, {"dense": dense, "bm25": 1.0}

    @property
    def faiss(self):
        gen = self.store.generation()
        if self._faiss is None or gen != self._faiss_generation:
            self._faiss = self.store.load_faiss()
            self._faiss_generation = gen
        return self._faiss

    # -- filters ----------------------------------------------------------------------------

    def allowed_ids(self, flt: Filter | None) -> np.ndarray | None:
        """Chunk ids passing the filter (None = no filter)."""
        return filters.allowed_ids(self.store, flt)

    # -- the modes ------------------------------------------------------------------------------

    def embed_query(self, query: str) -> np.ndarray:
        if self.embedder is None:
            raise ConfigError("dense search needs an embedder; open the Searcher with one")
        encode = getattr(self.embedder, "encode_query", None) or self.embedder.encode
        return encode(query)

    def dense(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        return self.dense_vector(self.embed_query(query), k, allowed)

    def dense_vector(
        self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top-k chunk ids by inner product with an already embedded query."""
        return self._dense_call(vector, k, allowed)()

    def milvus(self):
        """A Milvus index's engine, its mirror brought up to date first when SQLite moved on
        and no writer is at work (a writer syncs it itself when it finishes); None for a
        FAISS index."""
        target = self.meta.get("milvus")
        if not target:
            return None
        from ..index import milvus

        gen = self.store.generation()
        if self._milvus is None or gen != self._milvus_generation:
            stamp = self.store.meta_value("milvus_synced") or {}
            if stamp.get("generation") != gen:
                self.store.refresh_engine_if_free()
            self._milvus = milvus.MilvusEngine(target)
            self._milvus_generation = gen
        return self._milvus

    def _dense_call(self, vector, k: int, allowed: np.ndarray | None):
        """The FAISS search as a call that touches no SQLite (the index is fetched here), so
        that hybrid search can run it on another thread while FTS5 runs on this one."""
        engine = self.milvus()
        if engine is not None:
            call = lambda: engine.dense(vector, k, allowed)  # noqa: E731
        else:
            call = vectors.search_call(self.faiss, vector, k, allowed)
        if not self._cosine:
            return call
        # float error can pass 1 by 1e-7, and no score outside the cosine's range may ever
        # leave a dense search
        return lambda: [(cid, min(1.0, max(-1.0, s))) for cid, s in call()]

    def informative_words(self, words: list[str]) -> list[str]:
        """Drop words that occur in more than half of the chunks (IDF clamped to ~0 by FTS5),
        unless nothing would be left or the index is small (see :data:`PRUNE_MIN_CHUNKS`); on
        large indexes also those in more than :data:`COMMON_FRACTION` of the chunks, unless
        that would leave nothing."""
        gen = self.store.generation()
        if gen != self._df_generation:
            self._df, self._df_generation = {}, gen
            self._n_chunks = self.store.chunk_count()
        if self._n_chunks < PRUNE_MIN_CHUNKS or len(words) < 2:
            return words
        for w in words:
            if w not in self._df:
                self._df[w] = self.store.fts_df(w)
        keep = [w for w in words if self._df[w] * 2 <= self._n_chunks] or words
        if self._n_chunks >= COMMON_MIN_CHUNKS:
            keep = [w for w in keep if self._df[w] <= COMMON_FRACTION * self._n_chunks] or keep
        return keep

    def bm25(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        words = fts_words(query)
        if not words or (allowed is not None and len(allowed) == 0):
            return []
        engine = self.milvus()
        if engine is not None:  # Milvus's BM25 function, on the same words FTS5 would get
            return engine.bm25(" ".join(words), k, allowed)
        fts = fts_query(self.informative_words(words))
        return self.store.fts_top(fts, k, allowed)

    def sparse(
        self, query: str, qvec: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top-k chunk ids by the LLM's sparse word weights (an index built with --sparse).

        Raises:
            ConfigError: the index stores no sparse words, or no embedder was given.
        """
        scale = self.store.meta_value("sparse_scale")  # read now: a writer may have added them
        if scale is None:
            raise ConfigError(
                f"index {self.store.path} stores no sparse words; add them with "
                f"`tpr index FOLDER --index {self.store.path} --sparse` (nothing is re-embedded)"
            )
        if self.embedder is None:
            raise ConfigError("sparse search needs the embedder: open the Searcher with one")
        if self._sparse is None or self._sparse.scale != scale:
            self._sparse = sparse_terms.encoder_for(self.embedder, scale)
        bag = sparse_terms.query_bag(self._sparse, self.embedder, query, qvec)
        return sparse_terms.search(self.store, bag, k, allowed)

    def search(
        self,
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        flt: Filter | None = None,
        fetch_k: int = 50,
        weights: dict[str, float] | None = None,
        mmr: bool = False,
        lambda_mult: float = 0.5,
        min_score: float | None = None,
        query_vector: np.ndarray | None = None,
        fusion: str | None = None,
    ) -> list[Result]:
        """Top-k chunks for ``query`` (thread-safe).

        Args:
            query: the user's text.
            k: results wanted.
            mode: hybrid, dense, bm25, or sparse (an index built with ``--sparse``).
            flt: restricts the candidates before ranking.
            fetch_k: candidates taken from each side before fusion (hybrid).
            weights: fusion weights; with ``fusion=None`` both default per model
                (:data:`DEFAULT_HYBRID`); otherwise missing weights are 1.0. A positive
                ``"sparse"`` weight adds the sparse words as a third side of hybrid.
            mmr: re-rank the ``fetch_k`` candidates by maximal marginal relevance (needs the
                embedder): each pick maximises ``lambda * sim(query) - (1 - lambda) * max
                sim(already picked)`` over the stored chunk vectors.
            lambda_mult: 1 = pure relevance, 0 = pure diversity.
            min_score: drop results below this score, on the mode's own scale: cosine
                similarity for dense (-1..1), BM25 for bm25 (>= 0, unbounded), the dot product
                of word weights for sparse (>= 0), the fused score for hybrid (score fusion:
                at most ``sum(weights)``; rrf: at most ``sum(weights) / 61``).
            query_vector: the query already embedded (dense side and MMR); ``query`` may then
                be empty in dense mode.
            fusion: how hybrid combines the sides: ``rrf`` (ranks), ``score`` (normalised
                scores; the fused score is then at most ``sum(weights)``), or None for the
                model's default.

        Raises:
            EmptyInputError: empty query. ConfigError: unknown mode or bad k.
        """
        k = check_k(k)
        fetch_k = check_k(fetch_k, "fetch_k")
        if min_score is not None and not math.isfinite(min_score):
            raise ConfigError(f"min_score must be a finite number, not {min_score!r}")
        if not 0.0 <= lambda_mult <= 1.0:
            raise ConfigError(f"lambda_mult must be between 0 and 1, not {lambda_mult!r}")
        args = (query, k, mode, flt, fetch_k, weights, mmr, lambda_mult, min_score)
        with self._lock, self._damage_named():  # one SQLite connection and one FAISS index
            for attempt in range(3):
                self.follow()
                generation = self.store.generation()
                try:
                    return self._search(*args, query_vector, fusion)
                except (KeyError, sqlite3.OperationalError):
                    # A writer committed between this search's statements (a rebuild replaced
                    # the index, schema and all): ids from one state, rows from the next, or
                    # FTS5 meeting its table mid-swap. Search again, in the new state; without
                    # a new generation the error is real.
                    if attempt == 2 or not self._moved_on(generation):
                        raise
        raise AssertionError("unreachable")

    def _moved_on(self, generation) -> bool:
        """Whether the index has a new generation since ``generation`` was read."""
        try:
            return self.store.generation() != generation
        except sqlite3.Error:
            return True  # mid-swap: the next attempt reads the new state

    @contextlib.contextmanager
    def _damage_named(self):
        """A damaged index.db read mid-search raises IndexCorruptError naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise db_error(self.store.path, e) from None

    def _search(
        self, query, k, mode, flt, fetch_k, weights, mmr, lambda_mult, min_score, qvec, fusion
    ) -> list[Result]:
        if (not query or not query.strip()) and not (qvec is not None and mode == "dense"):
            raise EmptyInputError("the query is empty; type something to search for")
        if mode not in MODES:
            raise ConfigError(f"unknown search mode {mode!r}; choose {', '.join(MODES)}")
        if fusion is None:
            fusion, default_weights = self.default_hybrid()
            weights = weights or default_weights
        if fusion not in FUSE:
            raise ConfigError(f"unknown fusion {fusion!r}; choose {', '.join(FUSIONS)}")
        allowed = self.allowed_ids(flt or Filter())
        ranked: dict[str, list[tuple[int, float]]] = {}
        if mmr and self.embedder is None:
            raise ConfigError("MMR needs the embedder: open the Searcher with one")
        depth = max(k, fetch_k) if (mode == "hybrid" or mmr) else k
        if qvec is None and (mode != "bm25" or mmr):
            qvec = self.embed_query(query)  # once, for the dense side and MMR alike
        if mode == "hybrid":
            # FAISS and SQLite both release the GIL, so the two sides run at the same time:
            # with an approximate index hybrid then costs about what BM25 alone does. Exact
            # (Flat) search gains little on 2 cores, where FAISS already uses both.
            pending = self._pool().submit(self._dense_call(qvec, depth, allowed))
            lexical = self.bm25(query, depth, allowed)
            if (weights or {}).get("sparse", 0) > 0:  # a third side only when asked for
                ranked["sparse"] = self.sparse(query, qvec, depth, allowed)
            ranked["dense"], ranked["bm25"] = pending.result(), lexical
        elif mode == "dense":
            ranked["dense"] = self.dense_vector(qvec, depth, allowed)
        elif mode == "sparse":
            ranked["sparse"] = self.sparse(query, qvec, depth, allowed)
        else:
            ranked["bm25"] = self.bm25(query, depth, allowed)
        order = FUSE[fusion](ranked, weights) if mode == "hybrid" else ranked[mode]
        if min_score is not None:
            order = [(cid, s) for cid, s in order if s >= min_score]
        order = self._mmr(qvec, order, k, lambda_mult) if mmr else order[:k]
        return self._results(order, ranked)

    def _vectors(self, ids: list[int]) -> np.ndarray:
        return self.store.vectors(ids)

    def _mmr(
        self, qvec: np.ndarray, order: list[tuple[int, float]], k: int, lam: float
    ) -> list[tuple[int, float]]:
        """LangChain's own MMR (``maximal_marginal_relevance``) over the candidates' stored
        vectors, so the retriever and the VectorStore diversify exactly as LangChain does."""
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        if not order:
            return []
        vecs = self._vectors([cid for cid, _ in order])
        q = np.asarray(qvec, dtype=np.float32)
        return [order[i] for i in maximal_marginal_relevance(q, vecs, lambda_mult=lam, k=k)]

    def chunk_ids_for(self, doc_ids) -> list[int]:
        """Chunk ids for LangChain document ids (missing ones are left out), in order."""
        out = []
        with self._lock:
            for doc_id in doc_ids:
                m = FOLDER_ID.fullmatch(doc_id)
                if m:
                    out.append(int(m.group(1)))
                    continue
                cid = self.store.added_chunk_id(doc_id)
                if cid is not None:
                    out.append(cid)
        return out

    def fetch(self, ids: list[int]) -> dict[int, dict]:
        """Chunk rows by id, with path, LangChain doc id and decoded metadata."""
        if not ids:
            return {}
        with self._lock:
            rows = self.store.chunk_rows(ids)
        for r in rows.values():
            r["doc_id"] = (
                r["path"].removeprefix(API_PREFIX) if r["status"] == ADDED else f"chunk-{r['id']}"
            )
        return rows

    def replace_faiss(self, index, generation) -> None:
        """Adopt an index a writer has just brought up to ``generation`` (no reload)."""
        with self._lock:
            self._faiss, self._faiss_generation = index, generation

    def cached_faiss(self, generation):
        """The loaded FAISS index if it is at ``generation``, else None."""
        with self._lock:
            return self._faiss if self._faiss_generation == generation else None

    def _results(self, order, ranked) -> list[Result]:
        if not order:
            return []
        rows = self.fetch([cid for cid, _ in order])
        per_side = {
            side: {cid: (rank, s) for rank, (cid, s) in enumerate(hits, start=1)}
            for side, hits in ranked.items()
        }
        out = []
        for cid, score in order:
            r = rows.get(cid)
            if r is None:
                raise _Moved(cid)
            res = Result(
                cid,
                r["text"],
                r["path"],
                r["ordinal"],
                r["start"],
                r["end"],
                r["page"],
                float(score),
                doc_id=r["doc_id"],
                metadata=r["metadata"],
                start_line=r["start_line"],
                end_line=r["end_line"],
                heading=r["heading"],
            )
            for side, table in per_side.items():
                if cid in table:
                    res.ranks[side], res.scores[side] = table[cid]
            if len(per_side) > 1:
                res.scores["fused"] = float(score)
            out.append(res)
        return out
