"""UI polish (issue 17, item 6), in the real app via AppTest: code keeps its lines in monospace,
the index picker shows names, the TP table says what it is about, the map can show the whole
index, and nothing deprecated is called."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from retriever import TPEmbedder
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import Store, indexes_home

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
CODE = "```python\n>>> x = 1\n>>> print(x)\n1\n```"


@pytest.fixture
def named_index(tmp_path, tiny_model_dir, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TPR_HOME", str(home))
    monkeypatch.delenv("TPR_INDEX", raising=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text(f"# Guide\n\nFirst line about a cat\nsecond line.\n\n{CODE}\n")
    for i in range(5):
        (docs / f"f{i}.txt").write_text(f"Filler {i} about birds and trees and a cat.")
    emb = TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3)
    Indexer(emb, IndexOptions(chunk_size=120, overlap=0)).sync(docs, indexes_home() / "notes")
    return indexes_home() / "notes"


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_code_keeps_its_lines_and_prose_its_breaks(named_index):
    at = run_app()
    at.slider(key="k").set_value(10)
    at.text_input(key="query").input("cat").run()
    assert ">>> x = 1\n>>> print(x)\n1" in [c.value for c in at.code]  # monospace, verbatim
    prose = [m.value for m in at.markdown if "First line" in m.value]
    assert prose and "First line about a **cat**  \nsecond line" in prose[0]  # break kept


def test_picker_shows_names_and_tp_table_explains_itself(named_index):
    at = run_app()
    picker = at.sidebar.selectbox[0]
    assert picker.options == ["notes"] and picker.value == str(named_index)
    at.text_input(key="query").input("cat").run()
    caption = " ".join(c.value for c in at.tabs[4].caption)
    assert "For the query “cat”" in caption and "“change” = vanilla rank − TP rank" in caption


def test_the_map_can_show_the_whole_index(named_index):
    with Store.open(named_index) as store:
        total = store.rows.chunk_count()
    at = run_app()
    at.text_input(key="query").input("cat").run()
    at.slider(key="k").set_value(1).run()
    small = " ".join(c.value for c in at.tabs[5].caption)
    at.toggle(key="map_whole").set_value(True).run()
    assert not at.exception
    whole = " ".join(c.value for c in at.tabs[5].caption)
    assert f"{total} chunks and the query" in whole and f"{total} chunks" not in small
    assert at.tabs[5].children[0].type == "vega_lite_chart"
    # Streamlit 1.67 deprecates use_container_width (it logs in the browser session only, which
    # AppTest does not show), so the source is checked for it.
    assert "use_container_width" not in Path(APP).read_text()
