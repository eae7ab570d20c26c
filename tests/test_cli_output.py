"""CLI polish (issue 17, item 6): tpr list, search --mmr / --min-score, one "(default)",
an explicit word when nothing was skipped, and progress that counts bytes and chunks."""

from __future__ import annotations

import json

from click.testing import CliRunner

from retriever.cli import cli
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import DB_NAME, indexes_home

from .fakes import FakeEmbedder


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def make(root, files):
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_list_shows_every_named_index_and_survives_a_damaged_one(tmp_path, tokenizer):
    fake = FakeEmbedder(tokenizer)
    docs = make(tmp_path / "docs", {"a.txt": "a cat", "b.txt": "a dog on a road"})
    assert run("list").output.strip() == "no index yet: see `tpr index`"
    Indexer(fake).sync(docs, indexes_home() / "notes")
    Indexer(fake).sync(make(tmp_path / "other", {"x.txt": "fish"}), indexes_home() / "zz")
    (indexes_home() / "zz" / DB_NAME).write_bytes(b"garbage" * 100)
    r = run("list")
    assert r.exit_code == 0
    notes, zz = r.output.strip().splitlines()
    assert notes.startswith("notes  (fake, 2 files, 2 chunks, ") and "updated 20" in notes
    assert zz.startswith("zz  (damaged: the index database") and "--rebuild" in zz
    rows = json.loads(run("list", "--json").stdout)
    assert [(x["name"], x.get("chunks")) for x in rows] == [("notes", 2), ("zz", None)]
    assert rows[0]["bytes"] > 0


def test_models_says_default_once():
    out = run("models").output
    assert out.count("(default)") == 1 and "gemma3-270m (default):" in out


def test_files_says_when_nothing_was_skipped(tmp_path, tokenizer):
    docs, idx = make(tmp_path / "docs", {"a.txt": "a cat"}), tmp_path / "idx"
    Indexer(FakeEmbedder(tokenizer)).sync(docs, idx)
    assert run("files", "--index", idx, "--skipped").output.strip() == "no file was skipped"
    assert run("files", "--index", idx).output.strip() == "a.txt  (1 chunks)"


def test_search_mmr_and_min_score(tmp_path, tiny_model_dir):
    docs = make(
        tmp_path / "docs",
        {f"{i}.txt": "The " + "cat " * (i + 1) + "sat on a mat." for i in range(4)}
        | {"z.txt": "Dogs."},
    )
    idx = tmp_path / "idx"
    assert run("index", docs, "--index", idx, "--model", tiny_model_dir).exit_code == 0
    base = ["search", "cat mat", "--index", idx, "--json"]
    plain = json.loads(run(*base, "--mode", "bm25").stdout)["results"]
    floor = plain[1]["score"]
    kept = json.loads(run(*base, "--mode", "bm25", "--min-score", floor).stdout)["results"]
    assert kept == [x for x in plain if x["score"] >= floor] and 2 <= len(kept) < len(plain)
    r = run(*base, "--mode", "dense", "--mmr", "--mmr-lambda", "0", "-k", "2")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["results"]) == 2
    assert run(*base, "--mmr-lambda", "2").exit_code == 2


def test_progress_counts_bytes_and_chunks(tmp_path, tokenizer):
    files = {f"{i}.txt": "cat dog fish bird tree. " * (i + 1) * 20 for i in range(5)}
    docs = make(tmp_path / "docs", files)
    calls = []
    opts = IndexOptions(chunk_size=16, overlap=0, group_chunks=4)
    report = Indexer(FakeEmbedder(tokenizer), opts).sync(
        docs, tmp_path / "idx", on_progress=lambda *a: calls.append(a)
    )
    total = sum(len(t.encode()) for t in files.values())
    assert calls[-1] == (total, total, report.chunks)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls) and len(calls) >= 3


def test_progress_moves_inside_one_large_file(tmp_path, tokenizer):
    docs = make(tmp_path / "docs", {"big.txt": "cat dog fish bird tree. " * 400})
    calls = []
    opts = IndexOptions(chunk_size=16, overlap=0, group_chunks=4)
    report = Indexer(FakeEmbedder(tokenizer), opts).sync(
        docs, tmp_path / "idx", on_progress=lambda *a: calls.append(a)
    )
    size = (docs / "big.txt").stat().st_size
    assert report.chunks > 8 and len(calls) >= report.chunks // 4 - 1
    assert 0 < calls[0][0] < size and calls[-1] == (size, size, report.chunks)
    assert [c[2] for c in calls] == sorted(c[2] for c in calls)
