"""Files people actually have (issue 17, item 2): DOCX, PPTX, XLSX, EPUB and notebooks, each made
here as a small real file (zip + XML, or JSON), and .gitignore / .tprignore in the folder."""

from __future__ import annotations

import json
import zipfile

import pytest

from retriever.index.indexer import Indexer
from retriever.index.loaders import SkipFile, load, walk
from retriever.index.store import Store

from ..fakes import FakeEmbedder

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
A = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def zipped(path, files: dict[str, str]):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def docx(path, paragraphs):
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    return zipped(
        path, {"word/document.xml": f"<w:document {W}><w:body>{body}</w:body></w:document>"}
    )


def pptx(path, slides):
    files = {}
    for i, lines in enumerate(slides, 1):
        paras = "".join(f"<a:p><a:r><a:t>{t}</a:t></a:r></a:p>" for t in lines)
        files[f"ppt/slides/slide{i}.xml"] = (
            f"<p:sld xmlns:p='p' {A}><p:txBody>{paras}</p:txBody></p:sld>"
        )
    return zipped(path, files)


def xlsx(path):
    return zipped(
        path,
        {
            "xl/workbook.xml": f'<workbook {S}><sheets><sheet name="Prices"/><sheet name="Notes"/>'
            "</sheets></workbook>",
            "xl/sharedStrings.xml": f"<sst {S}><si><t>apple</t></si><si><t>pear</t></si></sst>",
            "xl/worksheets/sheet1.xml": f'<worksheet {S}><sheetData><row><c t="s"><v>0</v></c>'
            '<c><v>1.5</v></c></row><row><c t="s"><v>1</v></c><c><v>2</v></c></row>'
            "</sheetData></worksheet>",
            "xl/worksheets/sheet2.xml": f'<worksheet {S}><sheetData><row><c t="inlineStr">'
            "<is><t>fresh fruit only</t></is></c></row></sheetData></worksheet>",
        },
    )


def epub(path):
    return zipped(
        path,
        {
            "META-INF/container.xml": '<container><rootfiles><rootfile full-path="OEBPS/c.opf"/>'
            "</rootfiles></container>",
            "OEBPS/c.opf": '<package><manifest><item id="one" href="one.xhtml"/>'
            '<item id="two" href="two.xhtml"/></manifest><spine><itemref idref="one"/>'
            '<itemref idref="two"/></spine></package>',
            "OEBPS/one.xhtml": "<html><body><h1>Chapter one</h1><p>The cat sat.</p></body></html>",
            "OEBPS/two.xhtml": "<html><body><p>The dog ran.</p><script>x()</script></body></html>",
        },
    )


def notebook(path):
    cells = [
        {"cell_type": "markdown", "source": ["# Analysis\n", "We load the data."]},
        {"cell_type": "code", "source": "import pandas as pd\ndf = pd.read_csv('x')",
         "outputs": [{"output_type": "stream", "text": "SECRET OUTPUT"}]},
    ]  # fmt: skip
    path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_docx_paragraphs(tmp_path):
    doc = load(docx(tmp_path / "a.docx", ["First paragraph.", "Second one."]))
    assert doc.text == "First paragraph.\n\nSecond one." and doc.pages == []


def test_pptx_slides_keep_their_numbers(tmp_path):
    doc = load(pptx(tmp_path / "s.pptx", [["Title slide", "by me"], [], ["Third slide text"]]))
    assert doc.text == "Title slide\nby me\n\nThird slide text"
    assert doc.page_at(doc.text.index("Third")) == 3 and doc.page_at(0) == 1


def test_xlsx_sheets_with_names_and_cells(tmp_path):
    doc = load(xlsx(tmp_path / "b.xlsx"))
    assert doc.text == "Prices\napple\t1.5\npear\t2\n\nNotes\nfresh fruit only"
    assert doc.page_at(doc.text.index("fresh")) == 2


def test_epub_chapters_in_spine_order(tmp_path):
    doc = load(epub(tmp_path / "book.epub"))
    assert doc.text == "Chapter one\nThe cat sat.\n\nThe dog ran."
    assert doc.page_at(doc.text.index("dog")) == 2


def test_notebook_cells_without_outputs(tmp_path):
    doc = load(notebook(tmp_path / "n.ipynb"))
    assert "SECRET OUTPUT" not in doc.text and '"cell_type"' not in doc.text
    assert doc.text.startswith("# Analysis\nWe load the data.") and "import pandas" in doc.text
    assert doc.page_at(doc.text.index("import")) == 2


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx", ".epub", ".ipynb"])
def test_broken_files_are_skipped_with_a_reason(tmp_path, suffix):
    (tmp_path / f"bad{suffix}").write_bytes(b"not a zip and not json")
    with pytest.raises(SkipFile, match=f"unreadable {suffix[1:].upper()} file"):
        load(tmp_path / f"bad{suffix}")


def test_a_zip_bomb_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr("retriever.index.formats.MAX_UNPACKED", 1000)
    with pytest.raises(SkipFile, match="unpacks to more than"):
        load(docx(tmp_path / "big.docx", ["x" * 5000]))


def test_indexing_keeps_slide_numbers(tmp_path, tokenizer):
    root = tmp_path / "docs"
    root.mkdir()
    pptx(root / "deck.pptx", [["cat slide"], ["dog slide"]])
    Indexer(FakeEmbedder(tokenizer)).sync(root, tmp_path / "idx")
    with Store.open(tmp_path / "idx") as s:
        rows = s.rows.chunk_rows(s.rows.chunk_ids())
    assert [r["page"] for r in rows.values()] == [1]  # one chunk, starting on slide 1


def test_gitignore_and_tprignore_are_respected(tmp_path):
    root = tmp_path / "root"
    for rel in ["a.txt", "a.log", "keep.log", "build/out.txt", "sub/b.txt", "sub/c.tmp",
                "sub/deep/d.txt", "private/p.txt"]:  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / ".gitignore").write_text("*.log\n!keep.log\nbuild/\n")
    (root / ".tprignore").write_text("private/\n")
    (root / "sub" / ".gitignore").write_text("*.tmp\ndeep/\n")
    assert [f.rel for f in walk(root)] == ["a.txt", "keep.log", "sub/b.txt"]
    assert len([f.rel for f in walk(root, ignore_files=())]) == 8
