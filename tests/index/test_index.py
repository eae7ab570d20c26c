"""Indexing a folder: incremental sync, moves, skips, mismatches, FAISS cache, lock, crashes.

Real files in tmp_path, a real SQLite database and a real FAISS index; the embedder is a tiny
random Llama (fast, deterministic).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from retriever import EmbedderConfig, TPEmbedder
from retriever.index.faiss_engine import FaissEngine
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import FAISS_NAME, IndexLockedError, IndexMismatchError, Store

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def embedder(tiny_models, tokenizer):
    return TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp_exit=3, max_length=96))


class Counting:
    """Wraps an embedder and counts the texts it embeds (to prove what is *not* re-embedded)."""

    def __init__(self, inner):
        self.inner, self.texts = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts, **kw):
        self.texts += len(texts)
        return self.inner.encode(texts, **kw)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def para(n: int, word: str) -> str:
    return "\n\n".join(
        f"{word} sentence number {i} is here. It talks about {word}." for i in range(n)
    )


def check_integrity(index_dir: Path, root: Path | None = None) -> dict[str, int]:
    """Every invariant a reader relies on; returns {path: chunks}."""
    with Store.open(index_dir) as s:
        files = {r["path"]: r for r in s.db["files"].rows}
        chunks = s.db.execute("select id, file_id, ordinal from chunks order by id").fetchall()
        by_file: dict[int, list[int]] = {}
        for _, fid, ordinal in chunks:
            by_file.setdefault(fid, []).append(ordinal)
        ids_of_files = {r["id"] for r in files.values()}
        assert set(by_file) <= ids_of_files, "orphan chunks"
        for r in files.values():
            got = sorted(by_file.get(r["id"], []))
            want = list(range(r["chunks"])) if r["status"] == "indexed" else []
            assert got == want, f"{r['path']}: chunks {got} != {want}"
        idx = FaissEngine(s).load()
        assert idx.ntotal == len(chunks)
        ids = np.sort(faiss.vector_to_array(idx.id_map))
        np.testing.assert_array_equal(ids, [c[0] for c in chunks])
        if root is not None:
            on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
            assert set(files) == on_disk
        return {p: r["chunks"] for p, r in files.items()}


def test_incremental_sync_add_change_delete_move(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {"a.txt": para(6, "alpha"), "b.md": para(3, "beta"), "sub/c.txt": para(4, "gamma")})
    emb = Counting(embedder)
    ix = Indexer(emb, IndexOptions(chunk_size=24, overlap=0))

    r1 = ix.sync(root, idx)
    assert (r1.added, r1.updated, r1.removed, r1.unchanged) == (3, 0, 0, 0)
    first = check_integrity(idx, root)
    assert emb.texts == sum(first.values()) == r1.chunks > 3

    emb.texts = 0
    r2 = ix.sync(root, idx)  # nothing changed: nothing embedded, not even read
    assert (r2.added, r2.unchanged, emb.texts) == (0, 3, 0)

    os.utime(root / "b.md")  # touched, same content: hashed, not embedded
    r3 = ix.sync(root, idx)
    assert (r3.updated, r3.unchanged, emb.texts) == (0, 3, 0)

    (root / "a.txt").write_text(para(2, "delta"))  # changed
    (root / "sub/c.txt").rename(root / "moved.txt")  # moved
    (root / "b.md").unlink()  # deleted
    write(root, {"new.txt": "A brand new file. With two sentences."})
    r4 = ix.sync(root, idx)
    assert (r4.added, r4.updated, r4.moved, r4.removed) == (1, 1, 1, 1)
    after = check_integrity(idx, root)
    assert after["moved.txt"] == first["sub/c.txt"]
    assert emb.texts == after["a.txt"] + after["new.txt"]  # the move embedded nothing
    with Store.open(idx) as s:
        texts = [
            r["text"]
            for r in s.db.query(
                "select text from chunks join files on files.id = file_id where path = 'a.txt'"
            )
        ]
    assert all("delta" in t for t in texts)


def test_chunks_keep_offsets_and_pdf_pages(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    root.mkdir()
    (root / "doc.pdf").write_bytes((FIXTURES / "two_pages.pdf").read_bytes())
    write(root, {"t.txt": para(5, "omega")})
    Indexer(embedder, IndexOptions(chunk_size=16, overlap=0)).sync(root, idx)
    with Store.open(idx) as s:
        rows = list(
            s.db.query(
                'select path, text, start, "end", page from chunks join files on files.id = file_id'
            )
        )
    pages = {r["page"] for r in rows if r["path"] == "doc.pdf"}
    assert pages == {1, 2}
    source = (root / "t.txt").read_text()
    for r in rows:
        if r["path"] == "t.txt":
            assert source[r["start"] : r["end"]] == r["text"] and r["page"] is None


def test_bad_files_are_skipped_and_reported(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {"good.txt": "Readable text here.", "empty.txt": ""})
    (root / "bin.dat").write_bytes(b"\x00\x01binary")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (root / "big.txt").write_text("x" * 3000)
    opts = IndexOptions(chunk_size=24, max_bytes=2000)
    r = Indexer(embedder, opts).sync(root, idx)
    reasons = dict(r.skipped)
    assert r.added == 1 and set(reasons) == {"empty.txt", "bin.dat", "broken.pdf", "big.txt"}
    assert "binary" in reasons["bin.dat"] and "larger than" in reasons["big.txt"]
    check_integrity(idx, root)
    # A second run reports the same skips without re-reading them.
    assert dict(Indexer(embedder, opts).sync(root, idx).skipped) == reasons


def test_other_embedder_or_folder_is_refused(tmp_path, embedder, tiny_models, tokenizer):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {"a.txt": "Some text."})
    Indexer(embedder).sync(root, idx)
    other = TPEmbedder(
        tiny_models("llama"), tokenizer, EmbedderConfig(tp_exit=3, max_length=96, output_layer=5)
    )
    with pytest.raises(IndexMismatchError, match=r"output_layer: 6 -> 5.*--rebuild"):
        Indexer(other).sync(root, idx)
    write(tmp_path / "elsewhere", {"b.txt": "x"})
    with pytest.raises(IndexMismatchError, match="holds the folder"):
        Indexer(embedder).sync(tmp_path / "elsewhere", idx)
    r = Indexer(other).sync(root, idx, rebuild=True)  # the documented way out
    assert r.added == 1
    with Store.open(idx) as s:
        assert s.meta()["fingerprint"] == other.fingerprint


@pytest.mark.parametrize("damage", ["delete", "corrupt", "stale"])
def test_faiss_file_is_rebuilt_from_sqlite(tmp_path, embedder, damage):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {"a.txt": para(4, "alpha"), "b.txt": para(3, "beta")})
    emb = Counting(embedder)
    Indexer(emb, IndexOptions(chunk_size=24)).sync(root, idx)
    with Store.open(idx) as s:
        reference = FaissEngine(s).load()
        q = np.random.default_rng(0).standard_normal((1, embedder.dimension)).astype(np.float32)
        want = reference.search(q, 5)
    f = idx / FAISS_NAME
    if damage == "delete":
        f.unlink()
    elif damage == "corrupt":
        f.write_bytes(b"not a faiss index at all")
    else:
        with Store.writer(idx) as s:
            before = s.generation()
            s.bump_generation()
            assert s.generation() == before + 1 == s.meta()["generation"]
    emb.texts = 0
    with Store.open(idx) as s:
        assert not FaissEngine(s).is_current() or damage == "corrupt"
        got = FaissEngine(s).load().search(q, 5)
    np.testing.assert_array_equal(got[1], want[1])
    Indexer(emb, IndexOptions(chunk_size=24)).sync(root, idx)  # a writer re-stamps the file
    with Store.open(idx) as s:
        assert FaissEngine(s).is_current()
    assert emb.texts == 0  # rebuilt from SQLite, nothing re-embedded


def test_second_writer_gets_locked_error(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {"a.txt": "text"})
    with (
        Store.writer(idx),
        pytest.raises(IndexLockedError, match=f"locked by PID {os.getpid()}"),
    ):
        Indexer(embedder).sync(root, idx)
    Indexer(embedder).sync(root, idx)  # released on close


def test_interrupted_run_resumes_without_redoing_committed_files(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {f"f{i:02d}.txt": para(3, f"topic{i}") for i in range(12)})

    class Dies(Counting):
        def encode(self, texts, **kw):
            if self.texts > 20:
                raise KeyboardInterrupt  # like Ctrl-C in the middle of a run
            return super().encode(texts, **kw)

    opts = IndexOptions(chunk_size=24, group_chunks=4)
    with pytest.raises(KeyboardInterrupt):
        Indexer(Dies(embedder), opts).sync(root, idx)
    partial = check_integrity(idx)
    assert 0 < len(partial) < 12
    emb = Counting(embedder)
    r = Indexer(emb, opts).sync(root, idx)
    assert r.unchanged == len(partial) and r.added == 12 - len(partial)
    assert emb.texts == sum(check_integrity(idx, root).values()) - sum(partial.values())


_CHILD = """
import sys
sys.path.insert(0, {root!r})
from tests.conftest import build_model, make_tokenizer
from retriever import TPEmbedder, EmbedderConfig
from retriever.index.indexer import Indexer, IndexOptions
tok = make_tokenizer()
emb = TPEmbedder(build_model("llama", len(tok)), tok, EmbedderConfig(tp_exit=3, max_length=96))
ix = Indexer(emb, IndexOptions(chunk_size=24, group_chunks=3))
print("ready", flush=True)
ix.sync({docs!r}, {idx!r})
print("done", flush=True)
"""


def kill_at_random(code: str, idx: Path, runs: int, seed: int, wait: tuple[float, float]) -> int:
    """Start ``code`` (which prints "ready" before it indexes) ``runs`` times, SIGKILL it after a
    random wait, check the index after every kill; returns how many runs were really killed."""
    rng = random.Random(seed)
    kills = 0
    for _ in range(runs):
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        # (the BPE trainer in the child prints blank lines first)
        line = ""
        while line != "ready" and (raw := p.stdout.readline()):
            line = raw.strip()
        assert line == "ready"
        time.sleep(rng.uniform(*wait))
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += p.returncode == -signal.SIGKILL
        if (idx / "index.db").exists():
            check_integrity(idx)  # consistent after every kill, not just at the end
    return kills


def test_sigkill_at_random_points_then_resume(tmp_path, embedder):
    """SIGKILL an indexing process at random moments, many times; then check integrity."""
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {f"d{i:02d}/f{j}.txt": para(4, f"t{i}x{j}") for i in range(8) for j in range(5)})
    code = _CHILD.format(root=str(ROOT), docs=str(root), idx=str(idx))
    kills = kill_at_random(code, idx, runs=8, seed=1234, wait=(0.0, 1.5))
    assert kills >= 4  # most runs were really killed mid-way
    # Finish with a normal run; the result equals a clean index built in one go.
    Indexer(embedder, IndexOptions(chunk_size=24, group_chunks=3)).sync(root, idx)
    resumed = check_integrity(idx, root)
    clean = tmp_path / "clean"
    Indexer(embedder, IndexOptions(chunk_size=24, group_chunks=3)).sync(root, clean)
    assert check_integrity(clean, root) == resumed
    q = "select path, ordinal, text from chunks join files on files.id = file_id order by 1, 2"
    with Store.open(idx) as a, Store.open(clean) as b:
        assert list(a.db.query(q)) == list(b.db.query(q))


@pytest.mark.parametrize("factory", ["HNSW16", "IVF4,Flat", "IDMap2,Flat"])
def test_other_faiss_factories_are_built_and_trained(tmp_path, tokenizer, factory):
    from retriever.search.filters import Filter
    from retriever.search.searcher import Searcher

    from ..fakes import FakeEmbedder

    root, idx = tmp_path / "docs", tmp_path / "idx"
    words = ["cat", "dog", "fish", "bird", "tree", "car", "road", "sea", "sky", "book"]
    write(
        root,
        {f"f{i:02d}.txt": f"{words[i % 10]} {words[(i * 3) % 10]} text {i}" for i in range(40)},
    )
    emb = FakeEmbedder(tokenizer)
    Indexer(emb, IndexOptions(faiss_factory=factory)).sync(root, idx)
    check_integrity(idx, root)
    with Store.open(idx) as s:
        assert s.meta()["faiss_factory"] == factory
        assert faiss.read_index(str(idx / FAISS_NAME)).ntotal == 40
    searcher = Searcher(idx, emb)
    hits = searcher.search("cat", k=3, mode="dense")
    assert len(hits) == 3 and "cat" in hits[0].text
    # A filtered search works on every index type (IVF rejects untyped search parameters)
    # and, with nprobe / efSearch set, finds what exact search finds on this small index.
    flt = Filter(path_glob="f1*.txt")
    hits = searcher.search("dog", k=4, mode="dense", flt=flt)
    assert len(hits) == 4 and all(h.path.startswith("f1") for h in hits)
    exact = sorted(
        (float(emb.vector("dog") @ emb.vector(f"{words[i % 10]} {words[(i * 3) % 10]} text {i}")))
        for i in range(10, 20)
    )[::-1][:4]
    assert [h.score for h in hits] == pytest.approx(exact, abs=1e-5)


def test_auto_factory_is_flat_while_small_then_ivf():
    from retriever.index.vectors import AUTO_IVF_MIN, factory_for

    assert factory_for("auto", 0) == "Flat"
    assert factory_for("auto", AUTO_IVF_MIN - 1) == "Flat"
    # 4 sqrt(n), to the nearest power of two (so trained lists can be reused while n changes)
    assert factory_for("auto", AUTO_IVF_MIN) == "IVF1024,Flat"
    assert factory_for("auto", 100_000) == "IVF1024,Flat"
    assert factory_for("auto", 300_000) == "IVF2048,Flat"
    assert factory_for("auto", 1_000_000) == "IVF4096,Flat"
    assert factory_for("HNSW32", 10**7) == "HNSW32"  # a chosen factory is kept at any size


def test_auto_index_switches_to_ivf_when_it_grows(tmp_path, tokenizer, monkeypatch):
    from click.testing import CliRunner

    import retriever.index.vectors as vectors_mod
    from retriever.cli import cli
    from retriever.search.searcher import Searcher

    from ..fakes import FakeEmbedder

    root, idx = tmp_path / "docs", tmp_path / "idx"
    words = ["cat", "dog", "fish", "bird", "tree", "car", "road", "sea", "sky", "book"]
    files = {f"f{i:02d}.txt": f"{words[i % 10]} {words[(i * 3) % 10]} text {i}" for i in range(60)}
    write(root, dict(list(files.items())[:20]))
    emb = FakeEmbedder(tokenizer)
    monkeypatch.setattr(vectors_mod, "AUTO_IVF_MIN", 40)
    Indexer(emb).sync(root, idx)  # 20 chunks: exact
    small = faiss.read_index(str(idx / FAISS_NAME))  # kept alive: it owns the inner index
    assert isinstance(faiss.downcast_index(small.index), faiss.IndexFlat)
    write(root, files)
    Indexer(emb).sync(root, idx)  # 60 chunks: IVF, trained on them, nlist 32 (4 sqrt(60) = 31)
    with Store.open(idx) as s:
        assert s.meta()["faiss_factory"] == "auto"
    index = faiss.read_index(str(idx / FAISS_NAME))
    assert faiss.extract_index_ivf(index).nlist == 32 and index.ntotal == 60
    check_integrity(idx, root)
    hits = Searcher(idx, emb).search("cat", k=3, mode="dense")
    assert len(hits) == 3 and "cat" in hits[0].text
    result = CliRunner().invoke(cli, ["info", "--index", str(idx)])
    assert "FAISS auto = IVF32,Flat, current" in result.output

    def centroids():
        index = faiss.read_index(str(idx / FAISS_NAME))
        return faiss.extract_index_ivf(index).quantizer.reconstruct_n(0, 32)

    # A sync that changes a file re-adds the vectors to the trained lists: no retraining.
    trained = centroids()
    write(root, {"f03.txt": "whale ocean tide, a new text"})
    Indexer(emb).sync(root, idx)
    check_integrity(idx, root)
    assert np.array_equal(centroids(), trained)
    assert "whale" in Searcher(idx, emb).search("whale ocean tide", k=1, mode="dense")[0].text
    # Without the file, `tpr repair` trains afresh on today's vectors.
    (idx / FAISS_NAME).unlink()
    assert CliRunner().invoke(cli, ["repair", "--index", str(idx)]).exit_code == 0
    assert not np.array_equal(centroids(), trained)
    check_integrity(idx, root)


def test_readers_see_a_consistent_index_while_a_writer_works(tmp_path, embedder):
    """A reader opened before and during a write sees whole committed states only."""
    from retriever.search.searcher import Searcher

    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, {f"a{i}.txt": para(2, f"first{i}") for i in range(5)})
    Indexer(embedder, IndexOptions(chunk_size=24, group_chunks=2)).sync(root, idx)
    reader = Searcher(idx, embedder)
    before = reader.store.rows.chunk_count()
    write(root, {f"b{i}.txt": para(2, f"second{i}") for i in range(5)})

    seen = []

    class Watching(Counting):
        def encode(self, texts, **kw):
            # Mid-run: the writer holds the lock; the reader still answers consistently.
            n = reader.store.rows.chunk_count()
            files = reader.store.db.execute(
                "select coalesce(sum(chunks), 0) from files where status = 'indexed'"
            ).fetchone()[0]
            seen.append((n, files))
            assert reader.search("first1", k=2, mode="bm25")
            return super().encode(texts, **kw)

    Indexer(Watching(embedder), IndexOptions(chunk_size=24, group_chunks=2)).sync(root, idx)
    assert seen and all(n == files for n, files in seen)  # never a half-written file
    assert seen[0][0] == before and reader.store.rows.chunk_count() > before


def test_an_index_from_an_older_version_is_upgraded_when_opened(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    root.mkdir()
    (root / "a.txt").write_text("Token prepending for sentence embeddings.")
    Indexer(embedder).sync(root, idx)
    # Make it look like an index written before m003: no metadata column, no record of it.
    with Store.writer(idx) as store:
        store.db.execute("alter table chunks drop column metadata")
        store.db.execute("delete from _sqlite_migrations where name = 'm003_chunk_metadata'")
        store.db.conn.commit()
    import fcntl

    # While another process holds the writer lock, opening says so instead of migrating.
    fd = os.open(idx / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with pytest.raises(IndexLockedError):
        Store.open(idx)
    os.close(fd)
    with Store.open(idx) as store:
        assert "metadata" in store.db["chunks"].columns_dict
        assert store.rows.chunk_count() == 1


def test_an_index_stamped_with_the_previous_fingerprint_is_accepted_and_restamped(
    tmp_path, embedder
):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    root.mkdir()
    (root / "a.txt").write_text("Token prepending for sentence embeddings.")
    Indexer(embedder).sync(root, idx)
    (old,) = embedder.previous_fingerprints  # how versions before the dtype fix stamped it
    with Store.writer(idx) as store:
        store.set_meta(fingerprint=old)
    from retriever.search.searcher import Searcher

    assert Searcher(idx, embedder).search("token prepending", k=1, mode="dense")  # readers accept
    (root / "b.txt").write_text("A second file.")
    assert Indexer(embedder).sync(root, idx).added == 1  # writers accept and restamp
    with Store.open(idx) as store:
        assert store.meta()["fingerprint"] == embedder.fingerprint
    with Store.writer(idx) as store:  # a fingerprint that is neither is still refused
        store.set_meta(fingerprint="0" * 64)
    with pytest.raises(IndexMismatchError):
        Searcher(idx, embedder)
