"""Issue 23, C: no false "damaged", no advice that destroys. A full disk is a real tmpfs, a
read-only file system a real read-only bind mount (both need root: skipped elsewhere), a foreign
database a real SQLite file of someone else's, a damaged index real flipped pages."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from retriever.errors import IndexDiskFullError, IndexReadOnlyError, NotAnIndexError
from retriever.index import manage
from retriever.index.indexer import Indexer
from retriever.index.store import DB_NAME, FAISS_NAME
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder
from .helpers import contents, folder, read_only, run, small_disk


@pytest.fixture
def fake(tokenizer):
    return FakeEmbedder(tokenizer)


def many_docs(root, n=150):
    return folder(root, {f"doc{i:03}.txt": f"The cat {i} sat on the mat by the road. " * 30
                         for i in range(n)})  # fmt: skip


def fill(disk, leave: int) -> None:
    """Fill the disk but ``leave`` bytes."""
    import os

    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def footprint(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- C8: a full disk is a full disk -----------------------------------------------------------


def test_a_full_disk_is_named_as_such_and_the_next_run_finishes_the_index(tmp_path, fake):
    docs = many_docs(tmp_path / "docs")
    clean = tmp_path / "clean"
    Indexer(fake).sync(docs, clean)
    with small_disk(tmp_path / "disk", "16M") as disk:
        idx = disk / "idx"
        fill(disk, footprint(clean) * 3 // 4)
        with pytest.raises(IndexDiskFullError) as e:
            Indexer(fake).sync(docs, idx)
        message = str(e.value)
        assert "disk is full" in message and "resumes" in message
        assert "damaged" not in message and "--rebuild" not in message
        info = manage.info(idx)  # the index is healthy, only unfinished
        done = info["files"].get("indexed", 0)
        assert done < 150
        (disk / "filler").unlink()
        r = Indexer(fake).sync(docs, idx)
        assert r.added + done == 150
        assert contents(idx) == contents(clean)


def test_the_cli_says_disk_full_not_damaged(tmp_path, tiny_model_dir):
    docs = many_docs(tmp_path / "docs", 40)
    with small_disk(tmp_path / "disk", "8M") as disk:
        idx = disk / "idx"
        args = ["index", docs, "--model", tiny_model_dir, "--index", idx]
        fill(disk, 120_000)
        r = run(*args)
        assert r.exit_code == 1 and "disk is full" in r.output, r.output
        assert "damaged" not in r.output and "--rebuild" not in r.output
        assert "Traceback" not in r.output
        (disk / "filler").unlink()
        r = run(*args, "--json")
        assert r.exit_code == 0, r.output
        assert run("info", "--index", idx).exit_code == 0


# -- C10: a read-only file system -------------------------------------------------------------


def test_a_read_only_index_is_searchable_and_refuses_writes_by_name(tmp_path, fake):
    docs = folder(tmp_path / "docs")
    place = tmp_path / "media"
    idx = place / "idx"
    Indexer(fake).sync(docs, idx)
    with read_only(place):
        s = Searcher(idx, fake)
        assert s.search("cat", k=1, mode="dense")[0].path == "cats.txt"
        assert s.search("dog road", k=1, mode="hybrid")[0].path == "dogs.txt"
        s.close()
        info = run("info", "--index", idx)
        assert info.exit_code == 0 and "damaged" not in info.output, info.output
        for args in (["repair"], ["remove", "cats.txt"], ["index", docs]):
            r = run(*args, "--index", idx)
            assert r.exit_code == 1 and "read-only" in r.output, (args, r.output)
            assert "damaged" not in r.output and "Traceback" not in r.output
        with pytest.raises(IndexReadOnlyError):
            Indexer(fake).sync(docs, idx)
        assert run("list").exit_code == 0


def test_a_read_only_index_without_its_faiss_file_is_searched_from_sqlite(tmp_path, fake):
    docs = folder(tmp_path / "docs")
    place = tmp_path / "media"
    idx = place / "idx"
    Indexer(fake).sync(docs, idx)
    (idx / FAISS_NAME).unlink()  # stale or lost: readers rebuild it, and cannot write it back
    with read_only(place):
        s = Searcher(idx, fake)
        assert s.search("cat", k=1, mode="dense")[0].path == "cats.txt"
        assert s.search("dog road", k=1, mode="hybrid")[0].path == "dogs.txt"
        s.close()
        assert not (idx / FAISS_NAME).exists()


# -- C11: a foreign SQLite file ---------------------------------------------------------------


def test_no_command_writes_into_a_database_that_is_not_an_index(tmp_path, fake):
    idx = tmp_path / "idx"
    idx.mkdir()
    db = idx / DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("create table users (id integer primary key, name text)")
    conn.execute("insert into users (name) values ('ada')")
    conn.commit()
    conn.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    docs = folder(tmp_path / "docs")
    for args in (["repair"], ["remove", "cats.txt"], ["info"], ["files"],
                 ["index", docs, "--model", "fake"], ["index", docs, "--rebuild"]):  # fmt: skip
        r = run(*args, "--index", idx)
        assert r.exit_code == 1 and "not a tp-retriever index" in r.output, (args, r.output)
    for rebuild in (False, True):
        with pytest.raises(NotAnIndexError):
            Indexer(fake).sync(docs, idx, rebuild=rebuild)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in idx.iterdir()) == [DB_NAME, "lock"] or sorted(
        p.name for p in idx.iterdir()
    ) == [DB_NAME]
    conn = sqlite3.connect(db)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "delete"
    conn.close()


# -- C12: one damaged index never hides the others --------------------------------------------


def test_list_marks_a_damaged_index_and_lists_the_others(tmp_path, fake, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TPR_HOME", str(home))
    docs = many_docs(tmp_path / "docs", 300)
    Indexer(fake).sync(docs, home / "indexes" / "good")
    Indexer(fake).sync(docs, home / "indexes" / "hurt")
    path = home / "indexes" / "hurt" / DB_NAME
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    for page in range(len(data) // size // 2, len(data) // size):  # the chunk pages, not meta
        for i in range(page * size, page * size + 12):
            data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    rows = {r["name"]: r for r in manage.list_indexes()}
    assert rows["good"]["chunks"] > 0 and "error" not in rows["good"]
    assert "damaged" in rows["hurt"]["error"]
    r = run("list")
    assert r.exit_code == 0 and "good  (" in r.output and "hurt  (damaged" in r.output
