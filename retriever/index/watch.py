"""``tpr watch``: keep an index in sync with its folder while it changes.

Polling, not OS events: every ``interval`` seconds the folder is walked exactly as a sync walks
it (same include/exclude, ignore files, skipped entries) and only stats are compared, which costs
milliseconds for thousands of files, works the same on every OS and on network drives, and needs
no extra dependency. A change is *debounced*: the sync starts once the folder has stopped
changing for ``debounce`` seconds, so an editor's save-rename-delete dance or a ``git checkout``
causes one sync, not dozens. Each sync is an ordinary :meth:`Indexer.sync`: it takes the writer
lock (another writer makes this round wait for the next), embeds only what changed, commits in
groups and is crash-safe. The model loads once, at the first sync that needs it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import IndexLockedError, TPRError
from .indexer import Indexer, SyncReport
from .loaders import walk
from .store import INDEX_FILES, is_index_dir


def snapshot(root: Path, indexer: Indexer, index_dir: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of what a sync of ``root`` would look at (the index's own
    include and exclude patterns unless the indexer was given others)."""
    include, exclude = indexer.selection(index_dir)
    files = walk(
        Path(root),
        include,
        exclude,
        skip=[Path(index_dir)],
        skip_dir=is_index_dir,
        skip_names=lambda d: INDEX_FILES if is_index_dir(d) else frozenset(),
    )
    return {f.rel: (f.size, f.mtime_ns) for f in files}


def watch(
    root: Path,
    index_dir: Path,
    indexer: Indexer,
    interval: float = 2.0,
    debounce: float = 1.0,
    stop: threading.Event | None = None,
    on_sync: Callable[[SyncReport], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Sync now, then again after every settled change, until ``stop`` is set.

    The watcher never dies from what happens to the folder or the index: a file deleted or
    renamed mid-sync is skipped by the sync itself, and a round that fails (index locked, disk
    full, folder unmounted, the index refused) is reported through ``on_wait`` and tried again,
    after a pause that doubles up to :data:`MAX_BACKOFF` seconds while the failure lasts.

    Args:
        interval: seconds between looks at the folder.
        debounce: the folder must be unchanged this long before a sync starts.
        stop: set it to end the loop (Ctrl-C ends the CLI's).
        on_sync: called with each sync's report.
        on_wait: called with a message when a round is postponed or failed.
    """
    stop = stop or threading.Event()
    root, index_dir = Path(root), Path(index_dir)
    seen: dict | None = None
    failures = 0
    while not stop.is_set():
        pause = interval
        try:
            now = snapshot(root, indexer, index_dir)
            if now != seen:
                settled = now
                while not stop.wait(debounce):  # wait until the folder stops changing
                    later = snapshot(root, indexer, index_dir)
                    if later == settled:
                        break
                    settled = later
                if stop.is_set():
                    return
                report = indexer.sync(root, index_dir)
                seen, failures = settled, 0
                if on_sync is not None:
                    on_sync(report)
        except (TPRError, OSError, sqlite3.Error) as e:
            failures += 1
            pause = interval if isinstance(e, IndexLockedError) else _backoff(interval, failures)
            if on_wait is not None:
                on_wait(f"{e}; trying again in {pause:g}s")
        stop.wait(pause)


MAX_BACKOFF = 60.0


def _backoff(interval: float, failures: int) -> float:
    return min(MAX_BACKOFF, interval * 2 ** min(failures - 1, 10))
