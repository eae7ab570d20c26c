"""The writer lock of an index directory: an exclusive ``flock`` on its ``lock`` file.

The OS releases it if the process dies, so there are no stale locks; the holder's PID is written
in the file, so a second writer is told who holds it (:class:`IndexLockedError`) and ``tpr
info`` can name the run in progress. Readers never need it: they take it only to write a derived
structure back when nobody else is writing (:meth:`WriterLock.if_free`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import IndexLockedError, TPRError
from .failures import db_error

LOCK_NAME = "lock"


class WriterLock:
    """The lock of the index directory at ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise db_error(self.path, e) from None
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
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def try_acquire(self) -> bool:
        """Take the writer lock if it is free (True), without waiting. False when another
        writer holds it, or when it cannot be taken at all (a read-only file system)."""
        if self._fd is not None:
            return True
        try:
            self.acquire()
        except (TPRError, OSError):
            return False
        return True

    @property
    def writing(self) -> bool:
        """Whether this process holds the lock through this object."""
        return self._fd is not None

    @contextlib.contextmanager
    def if_free(self):
        """Yields True while this store holds the writer lock (held already, or taken now
        because no writer is at work), False when it cannot have it (another writer, a
        read-only file system). A lock taken here is released on exit. Readers use it to
        write a derived structure back only when nobody else is writing."""
        if self.writing:
            yield True
            return
        if not self.try_acquire():
            yield False
            return
        try:
            yield True
        finally:
            self.release()

    def holder(self) -> int | None:
        """The PID of the process writing to this index right now, or None.

        Probes with a shared lock, which conflicts only with a writer's exclusive one.
        """
        if self._fd is not None:
            return os.getpid()
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
