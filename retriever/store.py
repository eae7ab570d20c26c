"""One index = one directory: ``index.db`` (SQLite, the source of truth) + ``vectors.faiss``.

SQLite holds everything, vectors included (float32 blobs), and is changed only through
:mod:`retriever.migrations`. The FAISS file is a derived cache: ``vectors.json`` beside it records
the generation (a counter in SQLite bumped by every change to the chunks) and the vector count it
was built from. When the file is missing, stale or unreadable, the index is rebuilt from SQLite;
nothing is ever re-embedded for that. Nothing is pickled: FAISS has its own binary format and
everything else is JSON or SQL.

Writers take an exclusive ``flock`` on ``lock`` (the OS releases it if the process dies, so no
stale locks); a second writer gets :class:`IndexLockedError` naming the holder's PID. Readers
need no lock: SQLite runs in WAL mode, so they see the last committed state while a writer works.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import json
import math
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from .errors import TPRError
from .migrations import migrations

# "auto" picks the FAISS index by size each time it is built from SQLite (the end of every
# index run that changed chunks, `tpr repair`): exact Flat below AUTO_IVF_MIN chunks, where it
# answers in under ~16 ms; IVF from there, with nlist = 4 sqrt(n) rounded to a power of two.
# benchmarks/search_latency.py measured Flat at 33 ms p50 for 100k vectors and IVF1264,Flat
# (nprobe 32, see search.py) at 1.3 ms with recall@10 0.98, trained in ~11-17 s. The power of
# two lets later builds reuse the trained lists until the index grows or shrinks about 4x.
DEFAULT_FACTORY = "auto"
AUTO_IVF_MIN = 50_000
IVF_TRAIN_PER_LIST = 64  # training vectors per inverted list (FAISS wants at least 39)
IVF_FLAT = re.compile(r"IVF(\d+),Flat")


def factory_for(factory: str, n: int) -> str:
    """The FAISS ``index_factory`` string to build for ``n`` vectors ("auto" resolved)."""
    if factory != "auto":
        return factory
    if n < AUTO_IVF_MIN:
        return "Flat"
    return f"IVF{2 ** round(math.log2(4 * math.sqrt(n)))},Flat"


# Texts added through the LangChain VectorStore (not from the folder) are stored as one
# ``files`` row each, with this status and a path of API_PREFIX + their id. A walk never yields
# such a path (relative paths have no "//"), so they cannot collide with folder files, and a
# folder sync leaves them alone.
ADDED = "added"
API_PREFIX = "vectorstore://"
DB_NAME, FAISS_NAME, FAISS_META, LOCK_NAME = "index.db", "vectors.faiss", "vectors.json", "lock"


class IndexError_(TPRError):
    """Base class for index problems."""


class IndexLockedError(IndexError_):
    """Another process is writing to this index."""


class IndexMismatchError(IndexError_):
    """The index was built with a different embedder (fingerprint) or for another folder."""


class IndexNotFoundError(IndexError_):
    """No index at that path."""


def indexes_home() -> Path:
    """Where named indexes live: ``$TPR_HOME/indexes`` (default ``~/.local/share/tp-retriever``,
    or under ``$XDG_DATA_HOME``)."""
    if os.environ.get("TPR_HOME"):
        return Path(os.environ["TPR_HOME"]).expanduser() / "indexes"
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tp-retriever" / "indexes"


def resolve_index(name_or_path: str | Path | None) -> Path:
    """An index directory from a path, a bare name (under :func:`indexes_home`) or None.

    None means ``$TPR_INDEX`` if set, else the index named ``default``.
    """
    if name_or_path is None:
        env = os.environ.get("TPR_INDEX")
        return Path(env).expanduser() if env else indexes_home() / "default"
    text = str(name_or_path)
    if "/" in text or text.startswith(".") or Path(text).exists():
        return Path(text).expanduser()
    return indexes_home() / text


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def config_diff(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two embedder descriptions."""
    out = []
    for key in sorted(set(old) | set(new)):
        if key in ("batch_size", "device", "dtype"):
            continue
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out


class Store:
    """An index directory. Use :meth:`open` to read and :meth:`writer` to change it.

    Args:
        path: the index directory.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        # check_same_thread=False: async LangChain calls and Streamlit run searches on worker
        # threads; callers serialise access (Searcher holds a lock).
        conn = sqlite3.connect(self.path / DB_NAME, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA foreign_keys = ON")
        self._lock_fd: int | None = None

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open an existing index for reading.

        Raises:
            IndexNotFoundError: when there is no index there.
        """
        path = Path(path)
        if not (path / DB_NAME).exists():
            raise IndexNotFoundError(
                f"no index at {path}: build one with `tpr index FOLDER --index {path}`"
            )
        store = cls(path)
        if migrations.pending(store.db):
            # An index from an older version: upgrade it in place (migrations only add tables
            # and columns), under the writer lock so no sync runs meanwhile.
            try:
                store._acquire()
                store.db.enable_wal()
                migrations.apply(store.db)
            except IndexLockedError:
                store.close()
                raise
            except (OSError, sqlite3.Error) as e:
                store.close()
                raise IndexMismatchError(
                    f"index at {path} needs a schema upgrade and could not be upgraded ({e}); "
                    "run `tpr index` on it with write access"
                ) from None
            finally:
                store._release()
        return store

    @classmethod
    def writer(cls, path: Path) -> Store:
        """Open (creating if needed) for writing: takes the lock and applies migrations.

        Raises:
            IndexLockedError: when another process holds the writer lock.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        store._acquire()
        store.db.enable_wal()
        migrations.apply(store.db)
        return store

    def _acquire(self) -> None:
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise IndexLockedError(
                f"index {self.path} is locked by PID {holder} (another `tpr index` is writing); "
                "wait for it to finish, or stop that process"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        self.db.close()
        self._release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metadata ---------------------------------------------------------------------------

    def meta(self) -> dict:
        return {r["key"]: json.loads(r["value"]) for r in self.db["meta"].rows}

    def meta_value(self, key: str) -> Any:
        """One meta value (None if unset): searches read some each time, so skip the rest."""
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return json.loads(row[0]) if row else None

    def generation(self) -> int | None:
        return self.meta_value("generation")

    def set_meta(self, **values) -> None:
        self.db["meta"].upsert_all(
            [{"key": k, "value": json.dumps(v)} for k, v in values.items()], pk="key"
        )

    def bind(self, root: Path | None, embedder_info: dict, dimension: int, factory: str) -> None:
        """Record root and embedder on a new index; refuse a mismatch on an existing one.

        Args:
            root: the indexed folder, or None for texts added through the API only (an
                index without a folder takes the first folder it is synced with).

        Raises:
            IndexMismatchError: the index holds another folder or another embedder.
        """
        m = self.meta()
        root_s = str(Path(root).resolve()) if root is not None else None
        if "fingerprint" not in m:
            self.set_meta(
                root=root_s,
                fingerprint=embedder_info["fingerprint"],
                embedder=embedder_info["config"],
                dimension=dimension,
                metric="inner_product",
                faiss_factory=factory,
                created=now(),
                updated=now(),
                generation=0,
            )
            return
        if root_s is not None and m.get("root") not in (None, root_s):
            raise IndexMismatchError(
                f"index {self.path} holds the folder {m['root']}, not {root_s}; "
                "use --index DIR for a separate index"
            )
        if m["fingerprint"] in embedder_info.get("previous_fingerprints", ()):
            # The same embedder, fingerprinted the old way: adopt the new fingerprint.
            self.set_meta(fingerprint=embedder_info["fingerprint"])
        elif m["fingerprint"] != embedder_info["fingerprint"]:
            diff = config_diff(m.get("embedder", {}), embedder_info["config"]) or [
                "same settings, different weights or <PST> vector"
            ]
            raise IndexMismatchError(
                f"index {self.path} was built with another embedder (fingerprint "
                f"{m['fingerprint'][:12]}, now {embedder_info['fingerprint'][:12]}): "
                + "; ".join(diff)
                + ". Re-run with --rebuild to re-embed everything with the new settings, "
                "or use --index DIR for a separate index"
            )
        if root_s is not None and m.get("root") is None:
            self.set_meta(root=root_s)

    def bump_generation(self) -> int:
        gen = int(self.generation() or 0) + 1
        self.set_meta(generation=gen, updated=now())
        return gen

    # -- vectors and FAISS ------------------------------------------------------------------

    def top_allowed(
        self, sql: str, params: list, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """The first ``k`` (chunk id, score) rows of a best-first query, among ``allowed`` ids.

        Without ``allowed`` SQL applies the limit; with it, rows are read until ``k`` allowed
        ones are found (filters are applied before ranking, so k results come whenever k
        chunks match).
        """
        if allowed is None:
            rows = self.db.execute(sql + " limit ?", [*params, k])
        else:
            keep = set(allowed.tolist())
            rows = (r for r in self.db.execute(sql, params) if r[0] in keep)
        return [(int(cid), float(score)) for cid, score in itertools.islice(rows, k)]

    def chunk_count(self) -> int:
        return self.db.execute("select count(*) from chunks").fetchone()[0]

    def iter_vectors(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, [n, d] float32 vectors) from SQLite in id order, a batch at a time."""
        last = -1
        while True:
            rows = self.db.execute(
                "select id, vector from chunks where id > ? order by id limit ?", [last, batch]
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            yield ids, vecs.reshape(len(rows), -1)
            last = int(ids[-1])

    def build_faiss(self):
        """A FAISS index over every vector in SQLite (trained if the factory needs it)."""
        import faiss

        m = self.meta()
        n = self.chunk_count()
        d = int(m["dimension"])
        factory = factory_for(m.get("faiss_factory", "Flat"), n)  # older indexes: always Flat
        reused = self._trained_ivf(factory, d)
        base = reused or faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        index = base if isinstance(base, faiss.IndexIDMap2) else faiss.IndexIDMap2(base)
        if not base.is_trained:
            # An even sample, taken while streaming, so a million vectors never sit in memory
            # twice: 64 per inverted list for IVF, else (HNSW, PQ, ...) up to 100k.
            try:
                nlist = faiss.extract_index_ivf(base).nlist
            except RuntimeError:  # not an IVF index
                nlist = 0
            step = max(1, n // max(100_000, IVF_TRAIN_PER_LIST * nlist))
            parts, seen = [], 0
            for _, v in self.iter_vectors():
                parts.append(v[(-seen) % step :: step])  # global positions 0, step, 2 step, ...
                seen += len(v)
            sample = np.concatenate(parts or [np.zeros((0, d), dtype=np.float32)])
            try:
                index.train(np.ascontiguousarray(sample, dtype=np.float32))
            except RuntimeError as e:
                raise IndexError_(
                    f"cannot train FAISS index {factory!r} on {len(sample)} vectors ({e}); "
                    "use a smaller nlist, or --faiss auto (exact Flat on small indexes)"
                ) from None
        for ids, vecs in self.iter_vectors():
            index.add_with_ids(np.ascontiguousarray(vecs), ids)
        return index

    def _trained_ivf(self, factory: str, d: int):
        """The FAISS file's IVF index emptied of its vectors, if it has the lists ``factory``
        asks for; else None.

        Training is most of an IVF rebuild (16.5 s of the 18 s at 100k chunks), and the
        lists an index was trained on still partition it well after a sync changed a few
        files. So a rebuild re-adds every vector from SQLite to the trained lists. Deleting
        vectors.faiss and running ``tpr repair`` trains afresh.
        """
        import faiss

        match = IVF_FLAT.fullmatch(factory)
        if match is None or not (self.path / FAISS_NAME).exists():
            return None
        try:
            index = faiss.read_index(str(self.path / FAISS_NAME))
            ivf = faiss.extract_index_ivf(index)
        except RuntimeError:  # unreadable, or not IVF (it was Flat while the index was small)
            return None
        same = (
            index.d == d
            and ivf.nlist == int(match[1])
            and ivf.metric_type == faiss.METRIC_INNER_PRODUCT
            and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
        )
        if not same:
            return None
        index.reset()  # the vectors go, the trained coarse quantiser stays
        return index

    def _faiss_state(self) -> dict | None:
        try:
            return json.loads((self.path / FAISS_META).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def faiss_is_current(self) -> bool:
        state = self._faiss_state()
        m = self.meta()
        return bool(
            state
            and (self.path / FAISS_NAME).exists()
            and state.get("generation") == m.get("generation")
            and state.get("ntotal") == self.chunk_count()
        )

    def write_faiss(self, index=None) -> None:
        """Build (or take) the FAISS index and write it atomically with its stamp."""
        import faiss

        index = index if index is not None else self.build_faiss()
        tmp = self.path / (FAISS_NAME + ".tmp")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, self.path / FAISS_NAME)
        stamp = {"generation": self.generation(), "ntotal": int(index.ntotal)}
        tmp_meta = self.path / (FAISS_META + ".tmp")
        tmp_meta.write_text(json.dumps(stamp))
        os.replace(tmp_meta, self.path / FAISS_META)

    def load_faiss(self):
        """The FAISS index: from the file when current and readable, else rebuilt in memory."""
        import faiss

        if self.faiss_is_current():
            try:
                index = faiss.read_index(str(self.path / FAISS_NAME))
                if index.ntotal == self.chunk_count():
                    return index
            except RuntimeError:
                pass  # corrupt file: fall through to a rebuild from SQLite
        return self.build_faiss()
