"""The RAG notebook runs top to bottom on the real default model (executed, not just parsed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "rag_chain.ipynb"


def test_rag_notebook_executes(tmp_path, monkeypatch):
    # A fresh TPR_HOME: no demo index, so the notebook builds its small one (the converted
    # model stays in the usual cache).
    monkeypatch.setenv("TPR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TPR_NOTEBOOK_INDEX", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Committed with its outputs (a reader sees the cited answer without running it), made by
    # this same run on a fresh TPR_HOME: the small index, path:line citations.
    committed = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert committed.strip(), "commit the notebook with its outputs (run it, then save)"
    assert "built a small demo index: 5 files" in committed
    assert re.search(r"^\[1\] \w+\.txt:\d+(-\d+)?$", committed, re.M), committed
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = []
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "built a small demo index: 5 files" in text
    answer = next(line for line in text.splitlines() if line.startswith("A:"))
    assert len(answer) > 10
    sources = next(line for line in text.splitlines() if line.startswith("sources:"))
    cited = [p.strip() for p in sources.removeprefix("sources:").split(",")]
    topics = {"import.txt", "with.txt", "try.txt", "for.txt", "yield.txt"}
    assert len(cited) == 3 and all(re.fullmatch(r"\w+\.txt:\d+(-\d+)?", c) for c in cited)
    assert {c.split(":")[0] for c in cited} <= topics  # k = 3 chunks, from the small index
    assert "[Document(" in text and "'topic': 'for'" in text  # the filtered VectorStore search
