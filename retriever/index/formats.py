"""Files people actually have: Word, PowerPoint, Excel, EPUB and Jupyter notebooks -> text.

No extra dependency: the Office formats and EPUB are zip archives of XML (read with
``zipfile`` and ``xml.etree``, whose expat refuses entity-expansion bombs), notebooks are JSON.
Each part keeps its number where the format has one, in the ``pages`` of the Document, so a
result cites it: the slide of a PPTX, the sheet of an XLSX, the chapter (spine item) of an EPUB,
the cell of a notebook. DOCX has no pages in the file, so it has none here. Notebook cells keep
their source (markdown and code); outputs are dropped.

Bombs are skipped files, not a full memory: the archive limit counts the bytes *actually*
inflated (an archive that declares small sizes and inflates far more is caught as it inflates,
never trusted), the large XML parts are parsed as a stream (paragraphs and rows are dropped from
the tree once read), and the text extracted is capped too (``max_text``, the file size limit of
the run), so a 0.7 MB DOCX whose XML unpacks to 190 MB stops at the cap within seconds. Any error
a malformed document raises becomes a :class:`FormatError` naming the file's problem.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from xml.etree import ElementTree

MAX_UNPACKED = 100 * 1024 * 1024  # bytes actually inflated from one archive, all parts together
MAX_TEXT = 20 * 1024 * 1024  # characters of text taken from one document (the run's size limit)
OFFICE_SUFFIXES = {".docx", ".pptx", ".xlsx", ".epub", ".ipynb"}

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


class FormatError(Exception):
    """The file is not a readable document of its kind; ``str(e)`` says why."""


def parts(data: bytes, suffix: str, max_text: int = MAX_TEXT) -> list[tuple[int | None, str]]:
    """(number or None, text) of each part of a document, in reading order.

    Args:
        max_text: more text than this (characters, all parts together) skips the file.

    Raises:
        FormatError: broken, encrypted or oversized archive, bad XML or JSON, too much text,
            or any other malformation (with the error's type and message).
    """
    budget = _Budget(max_text)
    try:
        if suffix == ".ipynb":
            return _notebook(data, budget)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            reader = {".docx": _docx, ".pptx": _pptx, ".xlsx": _xlsx, ".epub": _epub}[suffix]
            return reader(_Archive(z), budget)
    except FormatError:
        raise
    except RecursionError:
        raise FormatError("nested too deeply") from None
    except Exception as e:  # any malformation: the file is skipped with its reason, never fatal
        raise FormatError(f"{type(e).__name__}: {e}") from None


class _Budget:
    """Text taken so far from one document, against ``max_text``."""

    def __init__(self, max_text: int):
        self.left = max_text
        self.limit = max_text

    def take(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise FormatError(f"its text is longer than {self.limit:,} characters")
        return text


class _Archive:
    """A zip file whose members are read with a budget on the bytes really inflated."""

    def __init__(self, z: zipfile.ZipFile):
        self.z = z
        self.left = MAX_UNPACKED

    def namelist(self) -> list[str]:
        return self.z.namelist()

    def read(self, name: str) -> bytes:
        with self.z.open(name) as f:
            data = f.read(self.left + 1)
        if len(data) > self.left:
            raise FormatError(f"unpacks to more than {MAX_UNPACKED // 2**20} MB")
        self.left -= len(data)
        return data

    def xml(self, name: str) -> ElementTree.Element:
        return ElementTree.fromstring(self.read(name))

    def stream(self, name: str, tag: str):
        """The ``tag`` elements of a member, each dropped from the tree once the caller has it
        (memory stays that of one element, not the document's)."""
        for _, elem in ElementTree.iterparse(io.BytesIO(self.read(name)), events=("end",)):
            if elem.tag == tag:
                yield elem
                elem.clear()


def _docx(z: _Archive, budget: _Budget) -> list[tuple[int | None, str]]:
    paragraphs = []
    for p in z.stream("word/document.xml", f"{_W}p"):
        text = "".join(t.text or "" for t in p.iter(f"{_W}t"))
        if text.strip():
            paragraphs.append(budget.take(text))
    return [(None, "\n\n".join(paragraphs))]


def _numbered(names: list[str], pattern: str) -> list[str]:
    found = [(int(m.group(1)), n) for n in names if (m := re.fullmatch(pattern, n))]
    return [n for _, n in sorted(found)]


def _pptx(z: _Archive, budget: _Budget) -> list[tuple[int | None, str]]:
    out = []
    for number, name in enumerate(_numbered(z.namelist(), r"ppt/slides/slide(\d+)\.xml"), 1):
        lines = []
        for p in z.stream(name, f"{_A}p"):
            text = "".join(t.text or "" for t in p.iter(f"{_A}t"))
            if text.strip():
                lines.append(budget.take(text))
        if lines:
            out.append((number, "\n".join(lines)))
    return out


def _xlsx(z: _Archive, budget: _Budget) -> list[tuple[int | None, str]]:
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in z.stream("xl/sharedStrings.xml", f"{_S}si"):
            shared.append(budget.take("".join(t.text or "" for t in si.iter(f"{_S}t"))))
    budget = _Budget(budget.limit)  # shared strings are counted again where cells use them
    names = [s.get("name") for s in z.xml("xl/workbook.xml").iter(f"{_S}sheet")]
    out = []
    sheets = _numbered(z.namelist(), r"xl/worksheets/sheet(\d+)\.xml")
    for number, name in enumerate(sheets, 1):
        rows = []
        for row in z.stream(name, f"{_S}row"):
            cells = [_cell(c, shared) for c in row.iter(f"{_S}c")]
            if any(x.strip() for x in cells):
                rows.append(budget.take("\t".join(cells)))
        if rows:
            title = names[number - 1] if number - 1 < len(names) else f"Sheet {number}"
            out.append((number, f"{title}\n" + "\n".join(rows)))
    return out


def _cell(c: ElementTree.Element, shared: list[str]) -> str:
    """A cell's text: a shared string (an index out of range or an empty ``<v/>`` reads as
    empty, as spreadsheet programs show it), an inline string, or the value as written."""
    v = c.find(f"{_S}v")
    inline = c.find(f"{_S}is")
    if c.get("t") == "s":
        text = (v.text or "").strip() if v is not None else ""
        return shared[int(text)] if text.isdigit() and int(text) < len(shared) else ""
    if inline is not None:
        return "".join(t.text or "" for t in inline.iter(f"{_S}t"))
    return v.text if v is not None and v.text else ""


def _epub(z: _Archive, budget: _Budget) -> list[tuple[int | None, str]]:
    from bs4 import BeautifulSoup

    container = z.xml("META-INF/container.xml")
    found = [e.get("full-path") for e in container.iter() if e.tag.endswith("rootfile")]
    rootfile = next((f for f in found if f), None)
    if rootfile is None:
        raise FormatError("not an EPUB (its container names no rootfile)")
    opf = z.xml(rootfile)
    base = rootfile.rsplit("/", 1)[0] + "/" if "/" in rootfile else ""
    items = {e.get("id"): e.get("href") for e in opf.iter() if e.tag.endswith("item")}
    spine = [e.get("idref") for e in opf.iter() if e.tag.endswith("itemref")]
    out = []
    for number, idref in enumerate(spine, 1):
        href = items.get(idref)
        if not href:
            continue
        soup = BeautifulSoup(z.read(base + href), "html.parser")
        for tag in soup(["script", "style"]):
            tag.decompose()
        lines = [line.strip() for line in soup.get_text("\n").splitlines()]
        text = "\n".join(line for line in lines if line)
        if text:
            out.append((number, budget.take(text)))
    return out


def _notebook(data: bytes, budget: _Budget) -> list[tuple[int | None, str]]:
    nb = json.loads(data.decode("utf-8-sig"))
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise FormatError("not a Jupyter notebook (no cells)")
    out = []
    for number, cell in enumerate(nb["cells"], 1):
        if not isinstance(cell, dict):  # a malformed cell is left out, the rest is read
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            text = "".join(x for x in source if isinstance(x, str))
        else:
            text = source if isinstance(source, str) else ""
        if cell.get("cell_type") in ("markdown", "code", "raw") and text.strip():
            out.append((number, budget.take(text.strip())))
    return out
