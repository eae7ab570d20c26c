"""Search one index: dense, lexical (BM25), sparse, and hybrid fusions.

The index's engine (:mod:`retriever.index.engine`, chosen once from its meta) answers dense and
BM25; this module decides what to ask it, fuses, filters and shapes the results.

* **dense**: the query is embedded with the index's embedder (its query prompt); score = inner
  product of normalised vectors = cosine similarity, never outside [-1, 1].
* **bm25**: the query reduced to its word tokens (:func:`~retriever.index.engine.fts_words`),
  scored by the engine's BM25 (SQLite FTS5 with Porter stemming locally; FTS syntax in user
  input never reaches a parser). Higher is better.
* **hybrid**: the top ``fetch_k`` of each side fused (:mod:`.fusion`). The method and weights
  default per embedder (:func:`retriever.embed.config.hybrid_default`): every measured default
  is score fusion with a small dense weight; rank fusion (``fusion="rrf"``) is the alternative.
* **sparse** (indexes built with ``--sparse``): the LLM's word weights, a dot product over the
  query's words (:mod:`retriever.index.sparse_terms`); with a positive ``"sparse"`` weight it is
  also a third side of hybrid.

Filters (:mod:`.filters`) are applied before ranking, so a search returns k results whenever k
chunks match. The store (:mod:`retriever.index.tables`) runs every SQL statement and the engine
every vector search; this module decides what to ask them.
"""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np

from ..embed.config import hybrid_default
from ..errors import ConfigError, EmptyInputError, IndexNotFoundError
from ..index import sparse_terms
from ..index.engine import fts_words
from ..index.engines import engine_for, engine_key
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
from .request import MAX_K, MODES, SearchRequest
from .result import Result, _Moved

FOLDER_ID = re.compile(r"chunk-(\d+)")  # LangChain ids of folder chunks; reserved


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
        self.engine = None  # chosen by _read_meta from the index's meta
        self._read_meta()
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None  # hybrid's dense side, made on first use
        self._sparse = None  # the sparse encoder, made on the first sparse search
        # Cosine scores are clipped to [-1, 1]: float error can pass 1 by 1e-7, and no score
        # outside the cosine's range may ever leave a dense search (indexes that store
        # unnormalised vectors on purpose keep their raw inner products).
        self._cosine = bool((self.meta.get("embedder") or {}).get("normalize", True))

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
        """The index's settings as of now; refused if they name another embedder. The engine
        is chosen here, once, and again only when the index moved to another one."""
        self.meta = self.store.meta()
        self._meta_generation = self.meta.get("generation")
        engine = self.engine
        if engine is None or engine.store is not self.store or engine.key != engine_key(self.meta):
            if engine is not None:
                engine.close()
            self.engine = engine_for(self.store, self.meta)
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
          place of its engine (or another embedder, refused) is seen at once.
        """
        identity = file_identity(self.index_dir)
        if identity != self.store.identity:
            if identity is None:
                raise IndexNotFoundError(
                    f"index {self.index_dir} is gone: its {DB_NAME} was deleted. Rebuild it with "
                    f"`tpr index FOLDER --index {self.index_dir}`"
                )
            self._reopen()
        elif self.store.generation() != self._meta_generation:
            self._read_meta()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
        self.engine.close()
        self.store.close()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tpr-dense")
        return self._executor

    def default_hybrid(self) -> tuple[str, dict[str, float]]:
        """(fusion method, weights) of the hybrid default: the index's own when ``tpr tune
        --queries --apply`` recorded one, else the measured default for its embedder
        (:func:`hybrid_default`)."""
        tuned = self.store.meta_value("search_default")
        if tuned:
            return tuned["fusion"], dict(tuned["weights"])
        config = getattr(self.embedder, "config", None)
        settings = (
            asdict(config) if is_dataclass(config) else {"model": getattr(config, "model", None)}
        )
        method, dense = hybrid_default(settings)
        return method, {"dense": dense, "bm25": 1.0}

    @property
    def vector_index(self):
        """The local engine's FAISS index (the map and neighbour views read its vectors).

        Raises:
            ConfigError: the index is searched by another engine.
        """
        index = getattr(self.engine, "index", None)
        if index is None:
            raise ConfigError(f"this view needs a local index; {self.engine.describe()} has none")
        return index

    # -- filters ----------------------------------------------------------------------------

    def allowed_ids(self, flt: Filter | None) -> np.ndarray | None:
        """Chunk ids passing the filter (None = no filter)."""
        return filters.allowed_ids(self.store, flt)

    def allowed(self, flt: Filter | None):
        """What the engine's searches take for the filter: its own form where it filters
        natively (:meth:`~retriever.index.engine.Engine.select`), else the ids."""
        return self.engine.select(flt, lambda: self.allowed_ids(flt))

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

    def _dense_call(self, vector, k: int, allowed: np.ndarray | None):
        """The engine's dense search as a call that touches no SQLite, so that hybrid search can
        run it on another thread while BM25 runs on this one."""
        call = self.engine.dense_call(vector, k, allowed)
        if not self._cosine:
            return call
        # float error can pass 1 by 1e-7, and no score outside the cosine's range may ever
        # leave a dense search
        return lambda: [(cid, min(1.0, max(-1.0, s))) for cid, s in call()]

    def bm25(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        return self.engine.bm25(fts_words(query), k, allowed)

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

    def run(self, request: SearchRequest, query_vector: np.ndarray | None = None) -> list[Result]:
        """Top-k chunks for a :class:`~retriever.search.request.SearchRequest` (what every door
        sends); a positive ``sparse_weight`` adds the sparse words as a third hybrid side, the
        dense and BM25 sides keeping the default weights."""
        opts = request.options()
        sparse = opts.pop("sparse_weight")
        if sparse > 0:
            method, weights = self.default_hybrid()
            opts["weights"] = {**(opts["weights"] or weights), "sparse": sparse}
            opts["fusion"] = opts["fusion"] or method
        return self.search(request.query, query_vector=query_vector, **opts)

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
                    # A fresh connection: one that met the swap can keep failing on FTS5's
                    # table ("vtable constructor failed") after the new state is committed.
                    self._reopen()
        raise AssertionError("unreachable")

    def _reopen(self) -> None:
        """Search the index through a new SQLite connection (same file, settings re-read)."""
        fresh = Store.open(self.index_dir)
        old, self.store = self.store, fresh
        old.close()
        self._read_meta()

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
        flt = flt or Filter()
        allowed = self.allowed(flt)
        if isinstance(allowed, np.ndarray) or allowed is None:
            in_sqlite = lambda: allowed  # noqa: E731
        else:  # the sparse words live in SQLite: they take ids, whatever the engine takes
            in_sqlite = lambda: self.allowed_ids(flt)  # noqa: E731
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
                ranked["sparse"] = self.sparse(query, qvec, depth, in_sqlite())
            ranked["dense"], ranked["bm25"] = pending.result(), lexical
        elif mode == "dense":
            ranked["dense"] = self.dense_vector(qvec, depth, allowed)
        elif mode == "sparse":
            ranked["sparse"] = self.sparse(query, qvec, depth, in_sqlite())
        else:
            ranked["bm25"] = self.bm25(query, depth, allowed)
        order = FUSE[fusion](ranked, weights) if mode == "hybrid" else ranked[mode]
        if min_score is not None:
            order = [(cid, s) for cid, s in order if s >= min_score]
        order = self._mmr(qvec, order, k, lambda_mult) if mmr else order[:k]
        return self._results(order, ranked)

    def _vectors(self, ids: list[int]) -> np.ndarray:
        return self.store.rows.vectors(ids)

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
                cid = self.store.rows.added_chunk_id(doc_id)
                if cid is not None:
                    out.append(cid)
        return out

    def fetch(self, ids: list[int]) -> dict[int, dict]:
        """Chunk rows by id, with path, LangChain doc id and decoded metadata."""
        if not ids:
            return {}
        with self._lock:
            rows = self.store.rows.chunk_rows(ids)
        for r in rows.values():
            r["doc_id"] = (
                r["path"].removeprefix(API_PREFIX) if r["status"] == ADDED else f"chunk-{r['id']}"
            )
        return rows

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
