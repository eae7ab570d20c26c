"""A Milvus collection mirroring one index's chunks, and the clients that reach it.

Design. One ``MilvusClient`` per URI per process (Milvus Lite serves a file to one process);
every Milvus failure becomes a :class:`MilvusError` that names the collection. A collection
holds per chunk: its SQLite id (the primary key), vector, text (for Milvus's BM25 function)
and the scalar fields filters run on (:data:`retriever.index.milvus_filter.SCALARS`). What keeps
it in line with SQLite is :mod:`retriever.index.milvus`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, StoreError
from .milvus_filter import SCALARS

TOKEN_ENV = "TPR_MILVUS_TOKEN"
LOCAL = "local"  # --milvus local: a Milvus Lite file inside the index directory
LITE_NAME = "milvus.db"
BATCH = 512  # rows per upsert
QUERY_WINDOW = 16384  # ids per query (Milvus caps a query's limit at 16,384)
MAX_TEXT = 65535  # Milvus VARCHAR limit, in bytes

_clients: dict[str, object] = {}
_loaded: set[tuple[str, str]] = set()  # collections loaded by this process
_scalars: dict[tuple[str, str], bool] = {}  # whether a collection has the filter fields
_clients_lock = threading.RLock()


@dataclass(frozen=True)
class Where:
    """A filter as a Milvus boolean expression (:mod:`retriever.index.milvus_filter`): what a
    Milvus index's searches take instead of a list of chunk ids."""

    expression: str


def _empty(allowed) -> bool:
    return isinstance(allowed, np.ndarray) and len(allowed) == 0


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
        _scalars.clear()


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
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("metadata", DataType.JSON, nullable=True)
        for name, (kind, nullable) in SCALARS.items():
            size = {"max_length": MAX_TEXT} if kind == "VARCHAR" else {}
            schema.add_field(name, getattr(DataType, kind), nullable=nullable, **size)
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
        _scalars.pop((self.uri, self.collection), None)

    @_reported
    def has_scalars(self) -> bool:
        """Whether the collection has the filter fields (one made before them has not)."""
        with _clients_lock:
            key = (self.uri, self.collection)
            if key not in _scalars:
                fields = self.client.describe_collection(self.collection)["fields"]
                _scalars[key] = set(SCALARS) <= {f["name"] for f in fields}
            return _scalars[key]

    @_reported
    def places(self, upto: int) -> dict[int, tuple[str, int]]:
        """(path, mtime) of every chunk in the collection, by id; ``upto`` bounds the ids (the
        largest SQLite ever gave, AUTOINCREMENT's counter). Read in id windows: a page can
        never skip a row, and Milvus Lite has no query iterator timestamps."""
        out: dict[int, tuple[str, int]] = {}
        fields = ["id", "path", "mtime"] if self.has_scalars() else ["id", "path"]
        for lo in range(0, upto + 1, QUERY_WINDOW):
            rows = self.client.query(
                self.collection,
                filter=f"id >= {lo} and id < {lo + QUERY_WINDOW}",
                output_fields=fields,
                limit=QUERY_WINDOW,
            )
            out.update((int(r["id"]), (r["path"], r.get("mtime"))) for r in rows)
        return out

    def ids(self, upto: int) -> set[int]:
        """Every chunk id in the collection (see :meth:`places`)."""
        return set(self.places(upto))

    @_reported
    def matching(self, where: Where) -> set[int]:
        """The ids a filter expression selects (what a filtered search searches among)."""
        rows = self.client.query(self.collection, filter=where.expression, output_fields=["id"])
        return {int(r["id"]) for r in rows}

    @_reported
    def count(self) -> int:
        return int(self.client.get_collection_stats(self.collection)["row_count"])

    @_reported
    def upsert(self, rows: list[dict]) -> None:
        for i in range(0, len(rows), BATCH):
            self.client.upsert(self.collection, rows[i : i + BATCH])

    @_reported
    def flush(self) -> None:
        """Seal what was written: Milvus Lite searches sealed segments ~20x faster than
        growing ones (benchmarks/milvus_large_filter.py)."""
        self.client.flush(self.collection)

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

    def _filter(self, allowed: np.ndarray | Where | None) -> str:
        if allowed is None:
            return ""
        if isinstance(allowed, Where):
            return allowed.expression
        return f"id in [{','.join(str(int(i)) for i in allowed)}]"

    @_reported
    def dense(self, vector: np.ndarray, k: int, allowed: np.ndarray | Where | None = None):
        """Top-k (chunk id, inner product), best first."""
        if _empty(allowed):
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
    def bm25(self, query: str, k: int, allowed: np.ndarray | Where | None = None):
        """Top-k (chunk id, BM25 score), best first, by Milvus's BM25 function."""
        if not query.strip() or _empty(allowed):
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
