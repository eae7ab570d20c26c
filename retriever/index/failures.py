"""What went wrong with an index, named as what it is: SQLite's and the OS's errors turned into
the library's, each with the way out.

Only damage (a malformed page, a file that is no database) is :class:`IndexCorruptError`, whose
remedy is a rebuild. A full disk, a read-only file system, an I/O error or a statement SQLite
refuses say nothing about the file's health, and their messages never advise ``--rebuild``.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ..errors import (
    IndexCorruptError,
    IndexDiskFullError,
    IndexIOError,
    IndexReadOnlyError,
    TPRError,
)

DB_NAME = "index.db"  # an index's SQLite file (re-exported by .store)


def corrupt_error(path: Path, cause: object) -> IndexCorruptError:
    """The error for a damaged ``index.db``: which file, and what to do."""
    return IndexCorruptError(
        f"the index database {Path(path) / DB_NAME} is damaged ({cause}); nothing in it can be "
        "trusted. Re-index the folder with `tpr index FOLDER --index "
        f"{path} --rebuild` (the damaged file is kept beside it as {DB_NAME}.damaged-*)"
    )


# SQLite's primary result codes that mean the file itself is damaged. Everything else (a full
# disk, a read-only file system, an I/O error, a statement SQLite refuses) says nothing about the
# file's health and must never be reported as damage: the remedy for damage (--rebuild) is the
# wrong one for them.
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_READ_ONLY_CODES = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
)


def db_error(path: Path, cause: BaseException) -> TPRError:
    """The library error for a ``sqlite3`` or OS error met while using the index at ``path``.

    Damage (a malformed page, not a database) is :class:`IndexCorruptError`; a full disk is
    :class:`IndexDiskFullError` (the next run resumes); a read-only file system is
    :class:`IndexReadOnlyError`; anything else is :class:`IndexIOError`, which names the cause
    and says the index is not damaged by it.
    """
    path = Path(path)
    if isinstance(cause, TPRError):
        return cause
    if isinstance(cause, OSError) and not isinstance(cause, sqlite3.Error):
        if cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return disk_full_error(path, cause.strerror or cause)
        if cause.errno == errno.EROFS:
            return read_only_error(path)
        return IndexIOError(
            f"index {path}: the operating system refused a read or write ({cause}); the index "
            "is not damaged by this. Fix the cause and run the command again"
        )
    code = getattr(cause, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary is None and isinstance(cause, sqlite3.DatabaseError) and _looks_damaged(cause):
        return corrupt_error(path, cause)
    if primary in _DAMAGE_CODES:
        return corrupt_error(path, cause)
    if primary == sqlite3.SQLITE_FULL:
        return disk_full_error(path, cause)
    if primary in _READ_ONLY_CODES and not writable(path):
        return read_only_error(path)
    return IndexIOError(
        f"index {path}: SQLite could not complete the request ({cause}); this is not damage to "
        "the index. Run the command again once the cause is fixed (`tpr info` checks the index)"
    )


def _looks_damaged(cause: BaseException) -> bool:
    """Errors this package raises itself (no SQLite code) for a file that is no index."""
    return not isinstance(cause, sqlite3.OperationalError)


def disk_full_error(path: Path, cause: object) -> IndexDiskFullError:
    return IndexDiskFullError(
        f"the disk is full: index {path} could not be written ({cause}). The index is intact: "
        "everything committed before this is kept. Free some space and run the same command "
        "again; it resumes where it stopped"
    )


def read_only_error(path: Path) -> IndexReadOnlyError:
    return IndexReadOnlyError(
        f"index {path} is on a read-only file system (or not writable): it can be searched, "
        "not changed. Copy it to a writable place to update it"
    )


def writable(path: Path) -> bool:
    """Whether the index directory (and its database) can be written: ``access`` reports a
    read-only file system (EROFS) even to root."""
    path = Path(path)
    db = path / DB_NAME
    return os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))
