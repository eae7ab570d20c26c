"""Looking after an index: what ``tpr info``, ``files``, ``remove`` and ``repair`` do, as library
calls that the CLI and the UI both use (each command opens, calls one of these, prints).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..embed.config import hybrid_default
from ..errors import FileNotInIndexError, IndexNotFoundError, TPRError
from .engines import engine_for
from .store import DB_NAME, Store, db_error, indexes_home
from .vectors import factory_for


def info(index_dir: Path, verify: bool = True) -> dict:
    """Everything known about an index, JSON-ready.

    Keys: the index's meta (root, embedder, fingerprint, chunking, faiss_factory, ...), plus
    ``index``, ``files`` (counts per status), ``chunks``, ``faiss_index`` (what "auto" builds
    at this size), ``hybrid`` ([method, dense weight]), ``writer_pid`` (an index run in
    progress, or None), ``faiss_current``, ``faiss_problem`` and ``faiss_state`` (words), and
    ``sparse_chunks`` on indexes with sparse words.

    Args:
        verify: run SQLite's ``quick_check`` over the whole file and the FAISS checks of
            :meth:`~retriever.index.engine.Engine.verify` (reads both in full; a UI card skips it).

    Raises:
        IndexNotFoundError, IndexCorruptError: no index there, or a damaged one.
    """
    with Store.open(index_dir) as store:
        meta = store.meta()
        if verify:
            store.check_integrity()
        writer = store.lock.holder()
        engine = engine_for(store, meta)
        problem = engine.verify() if verify else None
        data = {
            "index": str(index_dir),
            **meta,
            "engine": engine.name,
            "engine_description": engine.describe(),
            "files": store.rows.file_counts(),
            "chunks": store.rows.chunk_count(),
            "faiss_current": problem is None if verify else engine.is_current(),
            "faiss_problem": problem,
            "writer_pid": writer,
        }
        if "sparse_scale" in meta:  # a scan of the postings: only where there are any
            data["sparse_chunks"] = store.rows.sparse_chunk_count()
        data["faiss_state"] = engine.state(problem, writer) if verify else None
    data["faiss_index"] = factory_for(meta.get("faiss_factory", "Flat"), data["chunks"])
    data["hybrid"] = list(hybrid_default(meta.get("embedder") or {}))
    return data


def list_indexes(home: Path | None = None) -> list[dict]:
    """Every index under ``home`` (default: the named indexes' folder), by name.

    Each row: name, path, model, files (indexed), chunks, bytes on disk, updated; a damaged
    index gets an ``error`` instead of failing the list.
    """
    home = Path(home) if home is not None else indexes_home()
    if not home.is_dir():
        return []
    rows = []
    for path in sorted(p for p in home.iterdir() if (p / DB_NAME).exists()):
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file() and not f.is_symlink())
        row = {"name": path.name, "path": str(path), "bytes": size}
        try:
            with Store.open(path) as store:
                meta = store.meta()
                row |= {
                    "model": (meta.get("embedder") or {}).get("model"),
                    "files": store.rows.file_counts().get("indexed", 0),
                    "chunks": store.rows.chunk_count(),
                    "updated": meta.get("updated"),
                }
        except TPRError as e:
            row["error"] = str(e)
        except (sqlite3.Error, OSError) as e:  # a page read late, after the index opened
            row["error"] = str(db_error(path, e))
        rows.append(row)
    return rows


def files(index_dir: Path, skipped_only: bool = False) -> list[dict]:
    """path, status, reason, chunks and size of each file, by path."""
    with Store.open(index_dir) as store:
        return store.rows.list_files(skipped_only)


def remove(index_dir: Path, path: str) -> int:
    """Drop one file (relative to the indexed folder) and its chunks; returns how many went.

    Raises:
        FileNotInIndexError: no such file in the index.
        IndexLockedError: an index run is writing.
    """
    with _existing_writer(index_dir) as store:
        row = store.rows.file_by_path(path)
        if row is None:
            raise FileNotInIndexError(f"{path} is not in the index (see `tpr files`)")
        with store.atomic():
            store.rows.delete_file(row["id"])
            store.bump_generation()
        engine_for(store).sync()
    return int(row["chunks"] or 0)


def _existing_writer(index_dir: Path) -> Store:
    """The writer of an index that exists and records its embedder: nothing is created, and a
    folder or file that is no index is left exactly as it is.

    Raises:
        IndexNotFoundError: no index there, or one whose first run embedded nothing yet.
    """
    store = Store.writer(index_dir, create=False)
    if store.meta_value("fingerprint") is None:
        store.close()
        raise IndexNotFoundError(
            f"index {index_dir} holds nothing yet: its first `tpr index` run stopped before it "
            f"embedded anything. Run `tpr index FOLDER --index {index_dir}` to start it"
        )
    return store


@dataclass
class RepairReport:
    problem: str | None  # what was wrong with the engine's structure (None: nothing)
    vectors: int  # vectors in the index


def repair(index_dir: Path) -> RepairReport:
    """Check index.db (``quick_check``) and the FAISS file (stamp, checksum, ids, a sample of
    vectors against SQLite), and rebuild the FAISS file from SQLite if anything is off.

    Raises:
        IndexCorruptError: index.db itself is damaged (re-index the folder).
        IndexLockedError: an index run is writing.
    """
    with _existing_writer(index_dir) as store:
        store.check_integrity()
        engine = engine_for(store)
        problem = engine.verify()
        if problem is not None:
            engine.repair()
        return RepairReport(problem, store.rows.chunk_count())
