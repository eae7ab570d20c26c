"""One index = one directory: ``index.db`` (SQLite, the source of truth) and what its engine
derives from it for searching (its engine: :mod:`retriever.index.engine`).

SQLite holds everything, vectors included (float32 blobs), and is changed only through
:mod:`retriever.index.migrations` and the rows of :mod:`retriever.index.tables`. This module
opens it: for reading (read-only where the file system is), or for writing under the writer
lock, and names what goes wrong as what it is (:func:`db_error`): a damaged ``index.db`` (not
a database, truncated, malformed pages) raises :class:`IndexCorruptError` naming the file and
the way out; a full disk, a read-only file system or another program's database raise their
own errors, never "damaged".

Writers take an exclusive ``flock`` on ``lock`` (the OS releases it if the process dies, so no
stale locks); a second writer gets :class:`IndexLockedError` naming the holder's PID. Readers
need no lock: SQLite runs in WAL mode, so they see the last committed state while a writer works.
Nothing is pickled: everything is JSON, SQL, or the engine's own format.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import (
    IndexCorruptError,
    IndexLocationError,
    IndexLockedError,
    IndexMismatchError,
    IndexNotFoundError,
    NotAnIndexError,
    TPRError,
)
from .failures import (
    DB_NAME,
    corrupt_error,
    db_error,
    read_only_error,
    writable,
)
from .lock import LOCK_NAME, WriterLock
from .migrations import migrations
from .tables import ADDED, API_PREFIX, Tables, now  # noqa: F401 (re-exported)

# Texts added through the LangChain VectorStore (not from the folder) are stored as one
# ``files`` row each, with status ADDED and a path of API_PREFIX + their id (see .tables). A walk
# never yields such a path (relative paths have no "//"), so they cannot collide with folder
# files, and a folder sync leaves them alone.
FAISS_NAME, FAISS_META = "vectors.faiss", "vectors.json"
# Where ``tpr index --rebuild`` builds the new index before it takes the old one's place.
STAGING = "rebuild.tmp"
# Every file an index directory may hold (vectors.json is the stamp file of older versions; the
# stamp now lives in SQLite). A folder walk never yields these from an index directory.
INDEX_FILES = frozenset(
    {
        DB_NAME,
        DB_NAME + "-wal",
        DB_NAME + "-shm",
        DB_NAME + "-journal",
        FAISS_NAME,
        FAISS_NAME + ".tmp",
        FAISS_META,
        FAISS_META + ".tmp",
        LOCK_NAME,
        STAGING,
    }
)
log = logging.getLogger("retriever")


def is_index_dir(path: Path) -> bool:
    """Whether ``path`` looks like a tp-retriever index directory (``index.db`` + ``lock``)."""
    return (path / DB_NAME).is_file() and (path / LOCK_NAME).exists()


def indexes_home() -> Path:
    """Where named indexes live: ``$TPR_HOME/indexes`` (default ``~/.local/share/tp-retriever``,
    or under ``$XDG_DATA_HOME``)."""
    if os.environ.get("TPR_HOME"):
        return Path(os.environ["TPR_HOME"]).expanduser() / "indexes"
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tp-retriever" / "indexes"


def resolve_index(name_or_path: str | Path | None) -> Path:
    """An index directory from a path, a bare name (under :func:`indexes_home`) or None.

    A bare name (no ``/``, not starting with ``.`` or ``~``) *always* means
    ``indexes_home() / NAME``, even when a file or folder of that name exists in the current
    directory: ``tpr index ~/notes --index notes`` run from ``~`` must never write into
    ``~/notes``. Anything else is a path. None means ``$TPR_INDEX`` if set, else the index named
    ``default``.
    """
    if name_or_path is None:
        # $TPR_INDEX follows the same rule: TPR_INDEX=python-docs is the named index
        env = os.environ.get("TPR_INDEX", "").strip()
        return resolve_index(env) if env else indexes_home() / "default"
    if isinstance(name_or_path, Path):
        return name_or_path.expanduser()
    text = str(name_or_path)
    if not text.strip():
        raise IndexNotFoundError("the index name is empty; give a NAME or a path")
    if "/" in text or text.startswith((".", "~")) or os.sep in text:
        return Path(text).expanduser()
    return indexes_home() / text


def _sqlite_connect(db_file: Path, read_only: bool) -> sqlite3.Connection:
    """A connection to ``index.db``; read-only ones use SQLite's ``mode=ro`` (a WAL database on a
    read-only file system whose ``-shm`` file is gone opens only as ``immutable``).

    check_same_thread=False: async LangChain calls and Streamlit run searches on worker threads;
    callers serialise access (the Searcher holds a lock).
    """
    if not read_only:
        return sqlite3.connect(db_file, check_same_thread=False)
    uri = Path(db_file).resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


def salvage_meta(path: Path) -> dict:
    """Whatever settings a damaged ``index.db`` (an index directory, or the file itself) still
    holds: the meta rows that read and decode ({} when none do). Read-only; used to keep an
    index's settings when it is rebuilt."""
    out: dict = {}
    path = Path(path)
    db_file = path / DB_NAME if path.is_dir() else path
    try:  # immutable: reading creates no -wal or -shm file beside it
        conn = sqlite3.connect(f"{db_file.resolve().as_uri()}?immutable=1", uri=True)
    except sqlite3.Error:
        return out
    try:
        for key, value in conn.execute("select key, value from meta"):
            with contextlib.suppress(ValueError, TypeError):
                out[key] = json.loads(value)
    except sqlite3.Error:
        pass
    finally:
        conn.close()
    return out


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an index's ``index.db``: a file deleted and made anew under a running
    reader has another one, and the reader reopens it."""
    try:
        st = os.stat(Path(path) / DB_NAME)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Store:
    """An index directory. Use :meth:`open` to read and :meth:`writer` to change it.

    Args:
        path: the index directory.
    """

    def __init__(self, path: Path, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self.lock = WriterLock(self.path)
        # the settings a damaged index.db still held, when --rebuild moved it aside
        self.salvaged: dict | None = None
        self.db = sqlite_utils.Database(_sqlite_connect(self.path / DB_NAME, read_only))
        self.db.execute("PRAGMA foreign_keys = ON")
        self.rows = Tables(self.db)  # every statement against files, chunks, FTS5, sparse terms
        self.identity = file_identity(self.path)

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, bound: bool = True) -> Store:
        """Open an existing index for reading (read-only when its file system is).

        Args:
            bound: require an index that records its embedder; False also opens one whose
                first run stopped before anything was embedded (to read its settings).

        Raises:
            IndexNotFoundError: when there is no index there (or, with ``bound``, nothing in
                it yet).
            IndexCorruptError: ``index.db`` is damaged, empty or holds no index.
            NotAnIndexError: ``index.db`` is some other program's database.
        """
        path = Path(path)
        db_file = path / DB_NAME
        if not db_file.is_file():
            raise IndexNotFoundError(
                f"no index at {path}: build one with `tpr index FOLDER --index {path}`"
            )
        if db_file.stat().st_size == 0:
            raise corrupt_error(path, "the file is empty (0 bytes)")
        store = cls._connect(path, read_only=not writable(path))
        try:
            store._check_tables()
            if migrations.pending(store.db):
                store._upgrade()
            if bound and store.meta_value("fingerprint") is None:
                raise IndexNotFoundError(
                    f"index {path} holds nothing yet: its first `tpr index` run stopped before "
                    f"it embedded anything. Run `tpr index FOLDER --index {path}` to start it"
                )
        except (sqlite3.Error, json.JSONDecodeError, OSError) as e:
            store.close()
            raise db_error(path, e) from None
        except TPRError:
            store.close()
            raise
        return store

    @classmethod
    def _connect(cls, path: Path, read_only: bool = False) -> Store:
        try:
            return cls(path, read_only)
        except (sqlite3.Error, OSError) as e:
            raise db_error(path, e) from None

    def _check_tables(self, allow_empty: bool = False) -> None:
        """Reads the schema (a garbage file fails here) and checks that it is an index's.

        Raises:
            sqlite3.DatabaseError: the file is no database (damage).
            NotAnIndexError: a database of something else.
        """
        tables = {
            r[0] for r in self.db.execute("select name from sqlite_master where type = 'table'")
        }
        if "meta" in tables and "chunks" in tables:
            return
        if allow_empty and not (tables - {"_sqlite_migrations", "sqlite_sequence"}):
            return
        if tables:
            shown = ", ".join(sorted(tables)[:5])
            raise NotAnIndexError(
                f"{self.path / DB_NAME} is a SQLite database of something else (tables: {shown}), "
                "not a tp-retriever index; nothing was written to it. Give the index a "
                "directory of its own (--index NAME)"
            )
        raise sqlite3.DatabaseError("it holds no tp-retriever index tables")

    def _upgrade(self) -> None:
        # An index from an older version: upgrade it in place (migrations only add tables
        # and columns), under the writer lock so no sync runs meanwhile.
        try:
            self.lock.acquire()
            self.db.enable_wal()
            migrations.apply(self.db)
        except IndexLockedError:
            raise
        except OSError as e:
            raise IndexMismatchError(
                f"index at {self.path} needs a schema upgrade and could not be upgraded ({e}); "
                "run `tpr index` on it with write access"
            ) from None
        finally:
            self.lock.release()

    @classmethod
    def writer(cls, path: Path, recover: bool = False, create: bool = True) -> Store:
        """Open (creating if needed) for writing: takes the lock and applies migrations.

        Args:
            path: the index directory.
            recover: a damaged ``index.db`` is moved aside (``index.db.damaged-<time>``) and a
                new, empty one is started, instead of raising (``tpr index --rebuild``).
            create: start a new index when there is none; False refuses instead, creating
                nothing (``tpr remove``, ``tpr repair``).

        Raises:
            IndexNotFoundError: no index there and ``create`` is off.
            IndexLockedError: when another process holds the writer lock.
            IndexCorruptError: ``index.db`` is damaged (and ``recover`` is off).
            NotAnIndexError: ``index.db`` is another program's database (never written to).
            IndexReadOnlyError: the index lies on a read-only file system.
            IndexLocationError: a new index in a folder that holds other files.
        """
        path = Path(path)
        db_file = path / DB_NAME
        if not create and not db_file.is_file():
            raise IndexNotFoundError(
                f"no index at {path}: build one with `tpr index FOLDER --index {path}`"
            )
        if (db_file.exists() or path.is_dir()) and not writable(path):
            raise read_only_error(path)
        if path.is_dir() and not db_file.exists():
            others = sorted(p.name for p in path.iterdir() if p.name not in INDEX_FILES)
            if others:
                raise IndexLocationError(
                    f"{path} is a folder with other files in it ({', '.join(others[:3])}"
                    f"{', ...' if len(others) > 3 else ''}) and no index; an index needs a "
                    "directory of its own: give a new path, or a bare name (--index NAME)"
                )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise db_error(path, e) from None
        # A 0-byte index.db beside a FAISS file once held an index; alone it is a new one
        # whose first run stopped before SQLite wrote a page.
        emptied = db_file.is_file() and db_file.stat().st_size == 0 and (path / FAISS_NAME).exists()
        store = cls._connect(path)
        try:
            store.lock.acquire()
        except TPRError:
            store.db.close()
            raise
        try:
            if emptied:
                raise sqlite3.DatabaseError("the file is empty (0 bytes)")
            # Before anything is written: another program's database is never touched.
            store._check_tables(allow_empty=True)
            store.db.enable_wal()
            migrations.apply(store.db)
            store._check_tables()
            store.meta()  # every value decodes
        except NotAnIndexError:
            store.close()
            raise
        except (sqlite3.Error, json.JSONDecodeError, OSError) as e:
            error = db_error(path, e)
            if not (recover and isinstance(error, IndexCorruptError)):
                store.close()
                raise error from None
            try:
                store._move_aside(str(e))
            except (sqlite3.Error, OSError) as e2:
                store.close()
                raise db_error(path, e2) from None
        store.identity = file_identity(path)
        return store

    def _move_aside(self, cause: str) -> None:
        """Keep a damaged index.db as ``index.db.damaged-<time>`` and start an empty one."""
        self.db.close()
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        aside = self.path / f"{DB_NAME}.damaged-{stamp}"
        os.replace(self.path / DB_NAME, aside)  # a rename: it needs no free space
        # Whatever settings survive in it, so the rebuild keeps the index's own.
        self.salvaged = salvage_meta(aside)
        for name in (DB_NAME + "-wal", DB_NAME + "-shm", FAISS_NAME, FAISS_META):
            (self.path / name).unlink(missing_ok=True)
        log.warning(
            "%s was damaged (%s): kept as %s.damaged-%s; starting a new index",
            self.path / DB_NAME,
            cause,
            DB_NAME,
            stamp,
        )
        self.db = sqlite_utils.Database(_sqlite_connect(self.path / DB_NAME, False))
        self.db.execute("PRAGMA foreign_keys = ON")
        self.rows = Tables(self.db)
        self.db.enable_wal()
        migrations.apply(self.db)

    def replace_with(self, other: Store) -> None:
        """Make this index's database a copy of ``other``'s, in one transaction (SQLite's backup
        API): a reader sees the old content until the commit and the new after it, and a
        failure before the commit (a full disk) leaves the old content as it was."""
        other.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        other.db.conn.backup(self.db.conn)

    def check_integrity(self) -> None:
        """SQLite's ``quick_check`` over the whole file (reads every page: a diagnostic, not
        something to run per query).

        Raises:
            IndexCorruptError: the file is damaged.
        """
        try:
            rows = [r[0] for r in self.db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as e:
            raise corrupt_error(self.path, e) from None
        if rows != ["ok"]:
            raise corrupt_error(self.path, "; ".join(rows[:3]))

    def atomic(self):
        """One transaction: everything inside commits together or not at all."""
        return self.db.atomic()

    def close(self) -> None:
        self.db.close()
        self.lock.release()

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

    def clear_meta(self) -> None:
        """Forget every setting (``--rebuild`` records them afresh)."""
        self.db.execute("delete from meta")

    def set_meta(self, **values) -> None:
        self.db["meta"].upsert_all(
            [{"key": k, "value": json.dumps(v)} for k, v in values.items()], pk="key"
        )

    def places(self) -> int:
        """How often files were renamed or touched without new chunks (see places_changed)."""
        return int(self.meta_value("places") or 0)

    def places_changed(self) -> None:
        """A file is about to be renamed, or its mtime to change, with its chunks kept: the
        chunks' ids and vectors stay (so the generation does not move), but an engine that
        mirrors paths and times for filtering must re-send them. Called before the change, so
        a run killed in between costs one needless sync, never a stale mirror."""
        self.set_meta(places=self.places() + 1)

    def bump_generation(self) -> int:
        gen = int(self.generation() or 0) + 1
        self.set_meta(generation=gen, updated=now())
        return gen


def check_location(root: Path, index_dir: Path) -> None:
    """Refuse an index directory inside the folder it indexes (or the folder itself).

    Raises:
        IndexLocationError: with the way out.
    """
    here = Path(index_dir).expanduser().resolve()
    root = Path(root).resolve()
    if here == root or here.is_relative_to(root):
        raise IndexLocationError(
            f"the index directory {here} lies inside the folder being indexed ({root}); its "
            "files would be mixed with your documents. Use a bare name (--index NAME, kept "
            "under $TPR_HOME/indexes) or a path outside the folder"
        )
