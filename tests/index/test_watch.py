"""`tpr watch` (issue 17, item 4): an edit, a new file and a delete are picked up, debounced, by
ordinary syncs (the same lock: a busy index waits for the next round)."""

from __future__ import annotations

import threading
import time

from retriever.index.indexer import Indexer
from retriever.index.store import Store
from retriever.index.watch import snapshot, watch

from ..fakes import FakeEmbedder
from ..faults.helpers import wait_for


def test_watch_picks_up_edits_new_files_and_deletes(tmp_path, tokenizer):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    root.mkdir()
    (root / "a.txt").write_text("a cat on a mat")
    (root / "b.txt").write_text("a dog on a road")
    indexer = Indexer(FakeEmbedder(tokenizer))
    reports, waits, stop = [], [], threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(root, idx, indexer, 0.1, 0.2, stop, reports.append, waits.append),
        daemon=True,
    )
    thread.start()
    try:
        assert wait_for(lambda: len(reports) == 1) and reports[0].added == 2
        time.sleep(0.5)
        assert len(reports) == 1  # nothing changed: no sync
        (root / "a.txt").write_text("a fish in the sea")  # an edit ...
        (root / "c.txt").write_text("a bird in a tree")  # ... and a new file, one sync
        assert wait_for(lambda: len(reports) == 2)
        assert (reports[1].updated, reports[1].added) == (1, 1)
        with Store.writer(idx):  # another writer: this round waits
            (root / "b.txt").unlink()
            assert wait_for(lambda: waits)
            assert len(reports) == 2
        assert wait_for(lambda: len(reports) == 3) and reports[2].removed == 1
        with Store.open(idx) as s:
            assert {r["path"] for r in s.rows.list_files()} == {"a.txt", "c.txt"}
            texts = {r["path"]: r["text"] for r in s.rows.chunk_rows(s.rows.chunk_ids()).values()}
        assert texts == {"a.txt": "a fish in the sea", "c.txt": "a bird in a tree"}
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_snapshot_sees_what_a_sync_sees(tmp_path, tokenizer):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("x")
    (root / "sub" / "b.log").write_text("y")
    (root / ".gitignore").write_text("*.log\n")
    assert set(snapshot(root, Indexer(FakeEmbedder(tokenizer)), tmp_path / "idx")) == {"a.txt"}
