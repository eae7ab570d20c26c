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

The stamp (meta key ``milvus_synced``: generation and count) says whether the mirror matches
SQLite. Filters are resolved in SQLite as today (the same chunk id set as a local search) and
passed to Milvus as ``id in [...]``, so filtered results mean the same on both backends.

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

import contextlib
import functools
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import ConfigError, IndexLocationError, StoreError
from .engine import Engine, Hits

log = logging.getLogger("retriever")

TOKEN_ENV = "TPR_MILVUS_TOKEN"
LOCAL = "local"  # --milvus local: a Milvus Lite file inside the index directory
LITE_NAME = "milvus.db"
BATCH = 512  # rows per upsert
QUERY_WINDOW = 16384  # ids per query (Milvus caps a query's limit at 16,384)
MAX_TEXT = 65535  # Milvus VARCHAR limit, in bytes

_clients: dict[str, object] = {}
_loaded: set[tuple[str, str]] = set()  # collections loaded by this process
_clients_lock = threading.RLock()


class MilvusError(StoreError):
    """Milvus cannot be reached, or refused an operation."""


def is_remote(uri: str) -> bool:
    return bool(re.match(r"^(https?|tcp|grpc)://", uri))


def resolve_uri(uri: str, index_dir: Path) -> str:
    """The URI to record for an index: a Milvus Lite path made absolute (``local`` means one
    inside the index directory), a server URI unchanged."""
    if uri == LOCAL:
        return str((Path(index_dir) / LITE_NAME).resolve())
    if is_remote(uri):
        return uri
    if not uri.endswith(".db"):
        raise ConfigError(
            f"--milvus {uri!r}: give a Milvus Lite file ending in .db, a server URI such as "
            f"http://127.0.0.1:19530, or '{LOCAL}' for a Milvus Lite file in the index directory"
        )
    return str(Path(uri).expanduser().resolve())


def client(uri: str):
    """One ``MilvusClient`` per URI per process (Milvus Lite serves one process per file).

    Raises:
        ConfigError: pymilvus / milvus-lite are not installed.
        MilvusError: the server or file cannot be opened.
    """
    with _clients_lock:
        if uri in _clients:
            return _clients[uri]
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise ConfigError(
                "this index lives in Milvus: install its client with "
                "`pip install pymilvus milvus-lite` (or `pip install -e '.[milvus]'`)"
            ) from None
        kw = {"token": os.environ[TOKEN_ENV]} if os.environ.get(TOKEN_ENV) else {}
        try:
            c = MilvusClient(uri, **kw)
        except Exception as e:  # pymilvus raises its own hierarchy, and grpc errors
            hint = ""
            if not is_remote(uri):
                hint = (
                    ": Milvus Lite opens a file in one process at a time, so another process "
                    "(an index run, the UI) may hold it. For several processes run a server "
                    "(`milvus-lite server --data-dir DIR`) and index with --milvus "
                    "http://127.0.0.1:19530"
                )
            raise MilvusError(f"cannot open Milvus at {uri} ({e}){hint}") from e
        _clients[uri] = c
        return c


def close_all() -> None:
    """Close every client of this process (tests and the end of a CLI run)."""
    with _clients_lock:
        for c in _clients.values():
            with contextlib.suppress(Exception):  # closing is best effort
                c.close()
        _clients.clear()
        _loaded.clear()


def _reported(method):
    """Milvus's own exceptions (a server gone, a refused request) become a MilvusError that
    names the collection, so the CLI prints one line instead of a gRPC traceback."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except Exception as e:
            if type(e).__module__.split(".")[0] not in ("pymilvus", "grpc", "milvus_lite"):
                raise
            raise MilvusError(
                f"Milvus at {self.uri} failed on collection {self.collection}: {e}; "
                "`tpr repair` re-syncs it from SQLite once Milvus is back"
            ) from e

    return call


class Collection:
    """One index's collection: the mirror of its chunks.

    Args:
        target: the index's ``milvus`` meta value: ``{"uri": ..., "collection": ...}``.
    """

    def __init__(self, target: dict):
        self.uri = target["uri"]
        self.collection = target["collection"]

    @staticmethod
    def new_target(uri: str) -> dict:
        return {"uri": uri, "collection": f"tpr_{uuid.uuid4().hex}"}

    @property
    def client(self):
        c = client(self.uri)
        key = (self.uri, self.collection)
        if key not in _loaded:
            # Under the lock: hybrid search asks from two threads at once, and a collection
            # written by another process starts released (searches fail until it is loaded).
            with _clients_lock:
                if key not in _loaded and c.has_collection(self.collection):
                    c.load_collection(self.collection)
                    _loaded.add(key)
        return c

    @_reported
    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    @_reported
    def create(self, dim: int, metric: str = "IP") -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("path", DataType.VARCHAR, max_length=4096)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("metadata", DataType.JSON, nullable=True)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type=metric)
        index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.create_collection(self.collection, schema=schema, index_params=index)

    @_reported
    def drop(self) -> None:
        if self.exists():
            self.client.drop_collection(self.collection)
        _loaded.discard((self.uri, self.collection))

    @_reported
    def ids(self, upto: int) -> set[int]:
        """Every chunk id in the collection; ``upto`` bounds them (the largest id SQLite ever
        gave, AUTOINCREMENT's counter). Read in id windows: a page can never skip a row, and
        Milvus Lite has no query iterator timestamps."""
        out: set[int] = set()
        for lo in range(0, upto + 1, QUERY_WINDOW):
            rows = self.client.query(
                self.collection,
                filter=f"id >= {lo} and id < {lo + QUERY_WINDOW}",
                output_fields=["id"],
                limit=QUERY_WINDOW,
            )
            out.update(int(r["id"]) for r in rows)
        return out

    @_reported
    def count(self) -> int:
        return int(self.client.get_collection_stats(self.collection)["row_count"])

    @_reported
    def upsert(self, rows: list[dict]) -> None:
        for i in range(0, len(rows), BATCH):
            self.client.upsert(self.collection, rows[i : i + BATCH])

    @_reported
    def delete(self, ids: Iterable[int]) -> None:
        ids = sorted(ids)
        for i in range(0, len(ids), BATCH):
            self.client.delete(self.collection, ids=ids[i : i + BATCH])

    @_reported
    def vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        rows = self.client.get(self.collection, ids=ids, output_fields=["vector"])
        return {int(r["id"]): np.asarray(r["vector"], np.float32) for r in rows}

    # -- search ---------------------------------------------------------------------------

    def _filter(self, allowed: np.ndarray | None) -> str:
        return "" if allowed is None else f"id in [{','.join(str(int(i)) for i in allowed)}]"

    @_reported
    def dense(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """Top-k (chunk id, inner product), best first."""
        if allowed is not None and len(allowed) == 0:
            return []
        res = self.client.search(
            self.collection,
            data=[np.asarray(vector, np.float32).tolist()],
            anns_field="vector",
            limit=k,
            filter=self._filter(allowed),
            output_fields=["id"],
            search_params={"metric_type": "IP"},
        )
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    @_reported
    def bm25(self, query: str, k: int, allowed: np.ndarray | None = None):
        """Top-k (chunk id, BM25 score), best first, by Milvus's BM25 function."""
        if not query.strip() or (allowed is not None and len(allowed) == 0):
            return []
        res = self.client.search(
            self.collection,
            data=[query],
            anns_field="sparse",
            limit=k,
            filter=self._filter(allowed),
            output_fields=["id"],
            search_params={"metric_type": "BM25"},
        )
        hits = [(int(h["id"]), float(h["distance"])) for h in res[0]]
        # Milvus servers return the BM25 score as the distance; Milvus Lite returns its
        # negation (smaller = better). Best first either way, so turn the sign to "higher".
        if hits and (hits[0][1] < hits[-1][1] or hits[0][1] < 0):
            hits = [(cid, -s) for cid, s in hits]
        return [(cid, s) for cid, s in hits if s > 0]


def _row(r: dict, vector: np.ndarray) -> dict:
    text = r["text"]
    if len(text.encode()) > MAX_TEXT:  # BM25 sees the first 64 KiB; the text stays in SQLite
        text = text.encode()[:MAX_TEXT].decode(errors="ignore")
    return {
        "id": int(r["id"]),
        "vector": vector.tolist(),
        "text": text,
        "path": r["path"],
        "start": int(r["start"] or 0),
        "end": int(r["end"] or 0),
        "metadata": r["metadata"] or None,
    }


def sync(store, full: bool = False) -> dict:
    """Bring the index's Milvus collection in line with SQLite; returns what changed.

    Args:
        store: an open :class:`~retriever.index.store.Store` of a Milvus index (the caller holds
            the writer lock, or no writer is active).
        full: compare the id sets even when the stamp says the mirror is current.
    """
    target = store.meta_value("milvus")
    engine = Collection(target)
    stamp = store.meta_value("milvus_synced")
    gen, n = store.generation(), store.rows.chunk_count()
    current = bool(stamp and stamp.get("generation") == gen and stamp.get("count") == n)
    if current and not full and engine.exists():
        return {"upserted": 0, "deleted": 0}
    if not engine.exists():  # a new index or target, a rebuild, or a collection dropped by hand
        engine.create(int(store.meta_value("dimension")))
    # Stale until the end, whatever happens in between; a sync killed half-way is finished by
    # the next one (the id difference), never restarted from nothing.
    store.set_meta(milvus_synced={"generation": None, "count": None})
    want = {int(i) for i in store.rows.chunk_ids()}
    have = engine.ids(store.rows.max_chunk_id())
    gone, missing = have - want, sorted(want - have)
    engine.delete(gone)
    for i in range(0, len(missing), BATCH):
        part = missing[i : i + BATCH]
        rows = store.rows.chunk_rows(part)
        vecs = store.rows.vectors(part)
        engine.upsert([_row(rows[cid], vecs[j]) for j, cid in enumerate(part)])
    store.set_meta(milvus_synced={"generation": gen, "count": n})
    return {"upserted": len(missing), "deleted": len(gone)}


def verify(store, sample: int = 256) -> str | None:
    """What is wrong with the mirror, or None: its stamp, its id set, sampled vectors."""
    engine = Collection(store.meta_value("milvus"))
    stamp = store.meta_value("milvus_synced")
    if not engine.exists():
        return f"collection {engine.collection} is missing"
    if not stamp or stamp.get("generation") != store.generation():
        return "missing or stale"
    want = {int(i) for i in store.rows.chunk_ids()}
    if engine.ids(store.rows.max_chunk_id()) != want:
        return "ids differ from SQLite"
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
        gen = self.store.generation()
        if gen != self._checked:
            stamp = self.store.meta_value("milvus_synced") or {}
            if stamp.get("generation") != gen:
                self.sync_if_free()
            self._checked = gen
        return self.collection

    def dense_call(self, vector, k: int, allowed: np.ndarray | None):
        collection = self._fresh()
        return lambda: collection.dense(vector, k, allowed)

    def bm25(self, words: list[str], k: int, allowed: np.ndarray | None = None) -> Hits:
        if not words or (allowed is not None and len(allowed) == 0):
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
        stamp = self.store.meta_value("milvus_synced") or {}
        return stamp.get("generation") == self.store.generation()

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
