"""tpr index / info / files / remove / repair / demo against a tiny local model."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from retriever.cli import cli
from retriever.demo import write_python_docs
from retriever.index.store import FAISS_NAME


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r


def test_index_info_files_remove_repair(tmp_path, tiny_model_dir):
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.txt").write_text("Alpha text. More alpha.\n\nSecond paragraph.")
    (docs / "b.md").write_text("# Beta\n\nBeta text.")
    (docs / "bad.bin").write_bytes(b"\x00\x00")
    model = ["--model", tiny_model_dir, "--tp-exit", "3", "--index", idx]
    r = run("index", docs, *model, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 2 and summary["skipped"][0]["path"] == "bad.bin"

    info = json.loads(run("info", "--index", idx, "--json").stdout)
    assert info["files"] == {"indexed": 2, "skipped": 1} and info["faiss_current"]
    assert len(info["fingerprint"]) == 64 and info["embedder"]["tp_exit"] == 3

    r = run("files", "--index", idx, "--skipped")
    assert "bad.bin  (skipped: binary" in r.stdout

    r = run("remove", "b.md", "--index", idx)
    assert r.exit_code == 0 and "removed b.md" in r.stdout
    assert run("remove", "nope.txt", "--index", idx).exit_code == 1

    (idx / FAISS_NAME).write_bytes(b"junk")
    r = run("repair", "--index", idx)
    assert r.exit_code == 0 and "rebuilt from SQLite" in r.stdout
    assert "nothing to do" in run("repair", "--index", idx).stdout

    # Another embedder setting on the same index: refused with the way out.
    r = run("index", docs, *model, "--output-layer", "5")
    assert r.exit_code == 1 and "--rebuild" in r.output and "Traceback" not in r.output


def test_info_on_missing_index_is_a_clear_error(tmp_path):
    r = run("info", "--index", tmp_path / "none")
    assert r.exit_code == 1 and "no index at" in r.output and "tpr index" in r.output


def test_demo_corpus_is_written_from_cpython(tmp_path):
    n = write_python_docs(tmp_path)
    files = sorted(tmp_path.glob("*.txt"))
    assert n == len(files) > 50
    assert any("for" in f.read_text() for f in files)
    before = {f: f.stat().st_mtime_ns for f in files}
    write_python_docs(tmp_path)  # unchanged content keeps mtimes: re-index embeds nothing
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_search_cli_all_modes(tmp_path, tiny_model_dir):
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.txt").write_text("The cat sat on the mat.")
    (docs / "b.md").write_text("Dogs chase cars down the road.")
    assert (
        run("index", docs, "--model", tiny_model_dir, "--tp-exit", "3", "--index", idx).exit_code
        == 0
    )
    r = run("search", "cars road", "--index", idx, "--mode", "bm25", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert res[0]["path"] == "b.md" and "bm25" in res[0]["scores"]
    for mode in ("dense", "hybrid"):
        r = run("search", "cat", "--index", idx, "--mode", mode, "-k", "2", "--json")
        assert r.exit_code == 0, r.output
        assert len(json.loads(r.stdout)["results"]) == 2
    r = run("search", "cat", "--index", idx, "--type", ".md", "--mode", "bm25")
    assert r.exit_code == 0 and "a.txt" not in r.stdout
    r = run("search", "  ", "--index", idx, "--mode", "bm25")
    assert r.exit_code == 1 and "query is empty" in r.output


def test_index_names_and_paths(tmp_path, monkeypatch):
    from retriever.index.store import resolve_index

    monkeypatch.setenv("TPR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TPR_INDEX", raising=False)
    assert resolve_index(None) == tmp_path / "home/indexes/default"
    assert resolve_index("python-docs") == tmp_path / "home/indexes/python-docs"
    assert resolve_index(str(tmp_path / "x")) == tmp_path / "x"
    assert resolve_index("./rel") == Path("./rel")  # a relative path stays a path
    monkeypatch.setenv("TPR_INDEX", str(tmp_path / "env"))
    assert resolve_index(None) == tmp_path / "env"


def test_resync_reuses_the_index_settings_and_rebuild_takes_new_ones(tmp_path, tiny_model_dir):
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.txt").write_text("Alpha text. More alpha.")
    base = ["--model", tiny_model_dir, "--index", idx]
    assert run("index", docs, *base, "--pooling", "mean", "--tp-exit", "3").exit_code == 0
    (docs / "b.txt").write_text("Beta text.")
    # No settings repeated: the index's own are used, so this is a re-sync, not a mismatch.
    r = run("index", docs, *base, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 1
    embedder = json.loads(run("info", "--index", idx, "--json").stdout)["embedder"]
    assert (embedder["pooling"], embedder["tp_exit"]) == ("mean", 3)
    # --rebuild keeps the index's own settings (issue 23: it never silently switches them)...
    assert run("index", docs, *base, "--rebuild").exit_code == 0
    embedder = json.loads(run("info", "--index", idx, "--json").stdout)["embedder"]
    assert (embedder["pooling"], embedder["tp_exit"]) == ("mean", 3)
    # ...and takes the ones given.
    assert run("index", docs, *base, "--rebuild", "--pooling", "last").exit_code == 0
    embedder = json.loads(run("info", "--index", idx, "--json").stdout)["embedder"]
    assert (embedder["pooling"], embedder["tp_exit"]) == ("last", 3)


def test_bm25_search_and_info_start_without_torch(tmp_path, tiny_model_dir):
    """A command that loads no model must not pay torch's import (1.5-2.5 s of a cold start):
    run in a fresh process, which reports whether torch was imported."""
    import subprocess
    import sys

    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "b.md").write_text("Dogs chase cars down the road.")
    assert (
        run("index", docs, "--model", tiny_model_dir, "--tp-exit", "3", "--index", idx).exit_code
        == 0
    )
    code = (
        "import sys\n"
        "from retriever.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:], prog_name='tpr')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    for args in (
        ["search", "cars", "--index", str(idx), "--mode", "bm25"],
        ["info", "--index", str(idx)],
    ):
        out = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert "TORCH False" in out.stdout, (args, out.stdout[-500:])
        assert "b.md" in out.stdout or "chunks" in out.stdout
