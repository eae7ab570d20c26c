"""Folder walking and document loading: files -> plain text (with PDF page offsets).

A file that cannot be turned into text raises :class:`SkipFile` with a reason a person can act
on; the indexer records it and goes on. Walking never leaves the root: directory symlinks are not
followed and a file symlink is taken only if its target lies inside the root.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "site-packages",
}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
# Binary formats we know we cannot read: skipped without opening them.
BINARY_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".bmp",
    ".ico",
    ".webp",
    ".zip",
    ".gz",
    ".tar",
    ".tgz",
    ".xz",
    ".bz2",
    ".7z",
    ".exe",
    ".dll",
    ".so",
    ".dylib",
    ".o",
    ".a",
    ".class",
    ".jar",
    ".pyc",
    ".whl",
    ".mp3",
    ".mp4",
    ".wav",
    ".ogg",
    ".mov",
    ".avi",
    ".woff",
    ".woff2",
    ".ttf",
    ".otf",
    ".sqlite",
    ".db",
    ".faiss",
    ".safetensors",
    ".gguf",
    ".bin",
    ".pt",
    ".pkl",
    ".npy",
    ".parquet",
    ".docx",
    ".xlsx",
    ".pptx",
    ".odt",
}


class SkipFile(Exception):
    """This file yields no text; ``str(e)`` says why."""


@dataclass
class Document:
    """Text of one file. ``pages`` holds (page number, start offset) for PDFs."""

    text: str
    pages: list[tuple[int, int]] = field(default_factory=list)

    def page_at(self, offset: int) -> int | None:
        page = None
        for number, start in self.pages:
            if start > offset:
                break
            page = number
        return page


@dataclass(frozen=True)
class FileStat:
    """A file found by the walk: path relative to the root (POSIX), size, mtime."""

    rel: str
    size: int
    mtime_ns: int


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def walk(
    root: Path,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip: Sequence[Path] = (),
) -> Iterator[FileStat]:
    """Yield the files under ``root`` that indexing should look at, sorted by path.

    Args:
        root: the folder.
        include: glob patterns (on the relative path or the name); when given, only matches.
        exclude: glob patterns to leave out.
        skip: folders never to enter (e.g. the index itself when it lies inside the root).
    """
    root = root.resolve()
    skip_set = {p.resolve() for p in skip}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not d.startswith(".")
            and (here / d) not in skip_set
            and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            rel = path.relative_to(root).as_posix()
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root) or not target.is_file():
                    continue
            try:
                st = path.stat()
            except OSError:
                continue
            yield FileStat(rel, st.st_size, st.st_mtime_ns)


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM allowed), UTF-16 with a BOM, or UTF-8 with a few bad bytes replaced.

    Raises:
        SkipFile: for binary data or text that is not sensibly UTF-8.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise SkipFile("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        if bad <= max(1, len(text) // 200):  # a stray byte or two: keep the text
            return text
        raise SkipFile(f"not UTF-8 text ({bad} undecodable bytes); convert it to UTF-8") from None


def _html(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _pdf(path: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted PDF (needs a password)")
        parts, pages, offset = [], [], 0
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if not text:
                continue
            pages.append((number, offset))
            parts.append(text)
            offset += len(text) + 2
    except SkipFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise SkipFile(f"broken PDF ({type(e).__name__}: {e})") from None
    except Exception as e:  # pypdf raises many types on malformed input; report, don't crash
        raise SkipFile(f"unreadable PDF ({type(e).__name__}: {e})") from None
    if not parts:
        raise SkipFile("PDF has no extractable text (scanned images?)")
    return Document("\n\n".join(parts), pages)


def load(path: Path) -> Document:
    """Read one file as text.

    Raises:
        SkipFile: with the reason, for anything that yields no usable text.
    """
    suffix = path.suffix.lower()
    if suffix in BINARY_SUFFIXES:
        raise SkipFile(f"binary format ({suffix})")
    try:
        if suffix == ".pdf":
            doc = _pdf(path)
        else:
            data = path.read_bytes()
            doc = Document(_html(data) if suffix in HTML_SUFFIXES else decode_text(data))
    except PermissionError:
        raise SkipFile("permission denied") from None
    except IsADirectoryError:
        raise SkipFile("not a regular file") from None
    if not doc.text.strip():
        raise SkipFile("empty (no text)")
    return doc
