"""Citations and structure (issue 17, item 3): every chunk's lines (exact against the file),
the Markdown/reST heading path (stored, shown, filterable), code fences kept whole, and the
indexed folder in LangChain metadata."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from retriever.cli import cli
from retriever.index.chunking import Chunker
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import DB_NAME, Store
from retriever.index.structure import Lines, code_fences, heading_at, headings
from retriever.integrations import TPRetriever
from retriever.search.filters import Filter
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder

MD = """# Tutorial

The cat sat on the mat. A tree by the road.

## Query Parameters

A dog and a car on the road.

```python
# not a heading: a comment in code
cat = "dog"
```

### Defaults

The fish in the sea under the sky.

Setext Part
-----------

A bird in a book.
"""

FISH_LINE = MD[: MD.index("The fish")].count("\n") + 1  # where "The fish ..." stands

RST = """=====
Guide
=====

Install
=======

A cat on a road.

Details
-------

A fish in the sea.
"""


def test_heading_paths_for_markdown_and_rst():
    marks = headings(MD, ".md")
    assert [p for _, p in marks] == [
        "Tutorial",
        "Tutorial > Query Parameters",
        "Tutorial > Query Parameters > Defaults",
        "Tutorial > Setext Part",
    ]
    assert heading_at(marks, MD.index("The fish")) == "Tutorial > Query Parameters > Defaults"
    assert heading_at(marks, 0) == "Tutorial" and headings(MD, ".txt") == []
    assert [p for _, p in headings(RST, ".rst")] == [
        "Guide",
        "Guide > Install",
        "Guide > Install > Details",
    ]
    assert code_fences(MD) == [(MD.index("```python"), MD.index("```\n\n###") + 3)]


def test_lines_are_one_based_and_span_the_chunk():
    text = "one\ntwo\nthree\n"
    lines = Lines(text)
    assert lines.at(0) == 1 and lines.at(text.index("two")) == 2
    assert lines.span(text.index("two"), text.index("three") + 5) == (2, 3)


def test_code_fences_are_not_split_unless_longer_than_a_chunk(tokenizer):
    body = "\n".join(f"value_{i} = compute({i})" for i in range(8))
    text = "Some prose before the code.\n\n```python\n" + body + "\n```\n\nProse after."
    fence = text[text.index("```") : text.rindex("```") + 3]
    n = len(tokenizer(fence, add_special_tokens=False)["input_ids"])
    whole = Chunker(tokenizer, chunk_size=n + 8, overlap=0).split(text)
    assert any(c.text == fence or fence in c.text for c in whole)
    assert all(c.text.count("```") in (0, 2) for c in whole)
    cut = Chunker(tokenizer, chunk_size=n // 2, overlap=0).split(text)  # the fence alone is longer
    assert any(c.text.count("```") == 1 for c in cut)


@pytest.fixture
def index(tmp_path, tokenizer):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "guide.md").write_text(MD)
    (root / "manual.rst").write_text(RST)
    (root / "notes.txt").write_text("\n\nA cat.\n\nA dog on a road.\n")
    fake = FakeEmbedder(tokenizer)
    Indexer(fake, IndexOptions(chunk_size=16, overlap=0)).sync(root, tmp_path / "idx")
    return root, tmp_path / "idx", fake


def test_every_chunk_knows_its_lines_exactly(index):
    root, idx, _ = index
    with Store.open(idx) as s:
        rows = s.rows.chunk_rows(s.rows.chunk_ids())
        assert s.meta_value("citations") == "complete"  # later syncs skip the scan for them
    assert rows
    for r in rows.values():
        text = (root / r["path"]).read_text()
        assert r["start_line"] == text.count("\n", 0, r["start"]) + 1
        assert r["end_line"] == text.count("\n", 0, r["end"] - 1) + 1
        first = text.splitlines()[r["start_line"] - 1]
        assert r["text"].splitlines()[0] in first


def test_heading_is_stored_shown_and_filterable(index):
    _, idx, fake = index
    s = Searcher(idx, fake)
    hits = s.search("fish sea", k=10, mode="bm25", flt=Filter(heading="*defaults"))
    assert [(h.path, h.heading) for h in hits] == [
        ("guide.md", "Tutorial > Query Parameters > Defaults")
    ]
    assert hits[0].citation == f"guide.md:{FISH_LINE}"
    rst = s.search("fish", k=10, mode="bm25", flt=Filter(heading="Guide > Install*"))
    assert {h.path for h in rst} == {"manual.rst"}
    s.close()
    r = CliRunner().invoke(cli, ["search", "fish", "--index", str(idx), "--mode", "bm25"])
    assert (
        f"guide.md:{FISH_LINE} " in r.output
        and "§ Tutorial > Query Parameters > Defaults" in r.output
    )
    r = CliRunner().invoke(
        cli, ["search", "fish", "--index", str(idx), "--mode", "bm25", "--json", "--heading", "x*"]
    )
    assert json.loads(r.stdout)["results"] == []


def test_langchain_metadata_carries_folder_lines_and_heading(index):
    root, idx, fake = index
    doc = TPRetriever.from_index(idx, fake, mode="bm25", k=1).invoke(
        "fish sea", filter={"path_glob": "*.md"}
    )[0]
    m = doc.metadata
    assert m["root"] == str(root.resolve()) and m["source"] == "guide.md"
    assert m["citation"] == f"guide.md:{m['start_line']}" and m["start_line"] == FISH_LINE
    assert m["heading"] == "Tutorial > Query Parameters > Defaults"


def test_an_older_index_gets_its_lines_without_re_embedding(index):
    root, idx, fake = index
    with sqlite3.connect(idx / DB_NAME) as db:  # as an index from before m005 would be
        db.execute("update chunks set start_line = null, end_line = null, heading = null")
        db.execute("delete from meta where key = 'citations'")  # recorded since m005
    with Store.open(idx) as s:
        assert len(s.rows.files_missing_citations()) == 3
    calls = fake.calls
    report = Indexer(fake, IndexOptions()).sync(root, idx)
    assert report.chunks == 0 and fake.calls == calls  # nothing embedded
    with Store.open(idx) as s:
        assert s.rows.files_missing_citations() == []
        rows = s.rows.chunk_rows(s.rows.chunk_ids())
    assert {r["heading"] for r in rows.values() if r["path"] == "manual.rst"} >= {"Guide > Install"}
