"""Files people actually have: Word, PowerPoint, Excel, EPUB and Jupyter notebooks -> text.

No extra dependency: the Office formats and EPUB are zip archives of XML (read with
``zipfile`` and ``xml.etree``, whose expat refuses entity-expansion bombs), notebooks are JSON.
Each part keeps its number where the format has one, in the ``pages`` of the Document, so a
result cites it: the slide of a PPTX, the sheet of an XLSX, the chapter (spine item) of an EPUB,
the cell of a notebook. DOCX has no pages in the file, so it has none here. Notebook cells keep
their source (markdown and code); outputs are dropped. Archives are read only up to
``MAX_UNPACKED`` bytes in all, so a zip bomb is a skipped file, not a full disk or memory.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from xml.etree import ElementTree

MAX_UNPACKED = 200 * 1024 * 1024
OFFICE_SUFFIXES = {".docx", ".pptx", ".xlsx", ".epub", ".ipynb"}

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


class FormatError(Exception):
    """The file is not a readable document of its kind; ``str(e)`` says why."""


def parts(data: bytes, suffix: str) -> list[tuple[int | None, str]]:
    """(number or None, text) of each part of a document, in reading order.

    Raises:
        FormatError: broken, encrypted or oversized archive, bad XML or JSON.
    """
    try:
        if suffix == ".ipynb":
            return _notebook(data)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_UNPACKED:
                raise FormatError(f"unpacks to more than {MAX_UNPACKED // 2**20} MB")
            return {".docx": _docx, ".pptx": _pptx, ".xlsx": _xlsx, ".epub": _epub}[suffix](z)
    except FormatError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError, RuntimeError) as e:
        raise FormatError(f"{type(e).__name__}: {e}") from None


def _xml(z: zipfile.ZipFile, name: str) -> ElementTree.Element:
    return ElementTree.fromstring(z.read(name))


def _docx(z: zipfile.ZipFile) -> list[tuple[int | None, str]]:
    body = _xml(z, "word/document.xml")
    paragraphs = []
    for p in body.iter(f"{_W}p"):
        text = "".join(t.text or "" for t in p.iter(f"{_W}t"))
        if text.strip():
            paragraphs.append(text)
    return [(None, "\n\n".join(paragraphs))]


def _numbered(names: list[str], pattern: str) -> list[str]:
    found = [(int(m.group(1)), n) for n in names if (m := re.fullmatch(pattern, n))]
    return [n for _, n in sorted(found)]


def _pptx(z: zipfile.ZipFile) -> list[tuple[int | None, str]]:
    out = []
    for number, name in enumerate(_numbered(z.namelist(), r"ppt/slides/slide(\d+)\.xml"), 1):
        slide = _xml(z, name)
        lines = []
        for p in slide.iter(f"{_A}p"):
            text = "".join(t.text or "" for t in p.iter(f"{_A}t"))
            if text.strip():
                lines.append(text)
        if lines:
            out.append((number, "\n".join(lines)))
    return out


def _xlsx(z: zipfile.ZipFile) -> list[tuple[int | None, str]]:
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in _xml(z, "xl/sharedStrings.xml").iter(f"{_S}si"):
            shared.append("".join(t.text or "" for t in si.iter(f"{_S}t")))
    book = _xml(z, "xl/workbook.xml")
    names = [s.get("name") for s in book.iter(f"{_S}sheet")]
    out = []
    sheets = _numbered(z.namelist(), r"xl/worksheets/sheet(\d+)\.xml")
    for number, name in enumerate(sheets, 1):
        rows = []
        for row in _xml(z, name).iter(f"{_S}row"):
            cells = []
            for c in row.iter(f"{_S}c"):
                v = c.find(f"{_S}v")
                inline = c.find(f"{_S}is")
                if c.get("t") == "s" and v is not None:
                    cells.append(shared[int(v.text)])
                elif inline is not None:
                    cells.append("".join(t.text or "" for t in inline.iter(f"{_S}t")))
                elif v is not None and v.text:
                    cells.append(v.text)
            if any(x.strip() for x in cells):
                rows.append("\t".join(cells))
        if rows:
            title = names[number - 1] if number - 1 < len(names) else f"Sheet {number}"
            out.append((number, f"{title}\n" + "\n".join(rows)))
    return out


def _epub(z: zipfile.ZipFile) -> list[tuple[int | None, str]]:
    from bs4 import BeautifulSoup

    container = _xml(z, "META-INF/container.xml")
    rootfile = next(e for e in container.iter() if e.tag.endswith("rootfile")).get("full-path")
    opf = _xml(z, rootfile)
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
            out.append((number, text))
    return out


def _notebook(data: bytes) -> list[tuple[int | None, str]]:
    nb = json.loads(data.decode("utf-8-sig"))
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise FormatError("not a Jupyter notebook (no cells)")
    out = []
    for number, cell in enumerate(nb["cells"], 1):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") in ("markdown", "code", "raw") and text.strip():
            out.append((number, text.strip()))
    return out
