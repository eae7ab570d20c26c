"""Folder walking and document loading: files -> plain text (with PDF page offsets).

A file that cannot be turned into text raises :class:`SkipFile` with a reason a person can act
on; the indexer records it and goes on. Walking never leaves the root: directory symlinks are not
followed and a file symlink is taken only if its target lies inside the root. What the walk
passes over that a user may have expected to be indexed (symlinks leading out, dangling or in a
loop; FIFOs, sockets and devices) is reported with its reason, never opened: opening a FIFO
would wait forever for a writer.

Text is decoded as UTF-8 (BOM allowed), UTF-16 with a BOM, or UTF-16 without one when the bytes
have UTF-16's shape (a NUL beside nearly every ASCII character); anything else with NUL bytes is
binary. No NUL character ever reaches a chunk: a few stray NULs in otherwise good text are
dropped, since SQLite, FTS5 and tokenizers treat NUL as an end of string.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .formats import OFFICE_SUFFIXES, FormatError, parts
from .ignore import IGNORE_FILES, Ignores
from .structure import heading_at, headings

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
    ".odt",
}


# Files that are text to a computer but noise to a search: drawings, generated maps, lock files,
# minified code (an SVG logo ranked third for a question in a docs folder, and SVGs filled the
# near-duplicate list). Skipped by default with their reason; --include brings any of them back.
LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "pipfile.lock",
        "uv.lock",
        "cargo.lock",
        "gemfile.lock",
        "composer.lock",
        "go.sum",
        "flake.lock",
    }
)
_ASSETS = (
    ((".svg", ".svgz"), "SVG image (drawing markup)", "*.svg"),
    ((".js.map", ".mjs.map", ".cjs.map", ".css.map"), "source map (generated)", "*.map"),
    ((".min.js", ".min.mjs", ".min.css"), "minified code (generated)", "*.min.*"),
)


def asset_reason(name: str) -> str | None:
    """Why a file is an asset that is not indexed by default, with the way to index it anyway;
    None for a document."""
    lower = name.lower()
    for suffixes, what, pattern in _ASSETS:
        if lower.endswith(suffixes):
            return f"{what}: not indexed by default; --include '{pattern}' indexes it"
    if lower in LOCK_FILES:
        return f"lock file (generated): not indexed by default; --include '{name}' indexes it"
    return None


class SkipFile(Exception):
    """This file yields no text; ``str(e)`` says why."""


class Vanished(SkipFile):
    """The file was deleted or renamed after the walk found it. Nothing is recorded for it: the
    next sync's walk no longer finds it (or finds it under its new name)."""

    def __init__(self) -> None:
        super().__init__("vanished during the run (deleted or renamed); the next run sees it gone")


@dataclass
class Document:
    """Text of one file. ``pages`` holds (page number, start offset) for PDFs, ``headings``
    (offset, heading path) for Markdown and reST (:mod:`.structure`)."""

    text: str
    pages: list[tuple[int, int]] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)

    def heading_at(self, offset: int) -> str | None:
        return heading_at(self.headings, offset)

    def page_at(self, offset: int) -> int | None:
        page = None
        for number, start in self.pages:
            if start > offset:
                break
            page = number
        return page


@dataclass(frozen=True)
class FileStat:
    """A file found by the walk: path relative to the root (POSIX), size, mtime.

    ``rel`` is the name the index stores and shows: always valid UTF-8. A name whose bytes are
    not UTF-8 (a Latin-1 file name, say) is stored with the undecodable bytes written as
    ``\\xNN``; ``fs_rel`` keeps the name that opens the file.
    """

    rel: str
    size: int
    mtime_ns: int
    fs: str | None = None

    @property
    def fs_rel(self) -> str:
        """The relative path to open the file with (its real, undecoded name)."""
        return self.fs if self.fs is not None else self.rel


def stored_name(rel: str) -> str:
    """A relative path as the index stores it: as it is when it is valid UTF-8, else with each
    undecodable byte (which Python holds as a lone surrogate) written as ``\\xNN``."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def walk(
    root: Path,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip: Sequence[Path] = (),
    on_skip: Callable[[FileStat, str], None] | None = None,
    skip_dir: Callable[[Path], bool] | None = None,
    skip_names: Callable[[Path], frozenset[str]] | None = None,
    ignore_files: Sequence[str] = IGNORE_FILES,
) -> Iterator[FileStat]:
    """Yield the regular files under ``root`` that indexing should look at, sorted by path.

    Args:
        root: the folder.
        include: glob patterns (on the relative path or the name); when given, only matches.
        exclude: glob patterns to leave out.
        skip: folders never to enter (e.g. the index itself when it lies inside the root).
        on_skip: called with (entry, reason) for each entry passed over that a person might
            have expected to be indexed: symlinks leading outside the root, dangling or in a
            loop, directory symlinks, and anything that is not a regular file.
        skip_dir: folders for which this returns True are not entered (e.g. index folders).
        skip_names: names to pass over silently in a folder (e.g. an index's own files).
        ignore_files: files whose gitignore-style patterns leave paths out (``.gitignore``,
            ``.tprignore``), in any folder, applying below it; a deeper file's verdict wins, as
            in git.
    """
    root = root.resolve()
    skip_set = {p.resolve() for p in skip}

    def passed_over(rel: str, reason: str) -> None:
        if on_skip is not None:
            on_skip(FileStat(stored_name(rel), 0, 0), reason)

    ignores = Ignores(root, ignore_files)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        ignores.enter(here)
        keep = []
        for d in sorted(dirnames):
            if d in SKIP_DIRS or d.startswith("."):
                continue
            path = here / d
            if ignores.ignored(path.relative_to(root).as_posix() + "/"):
                continue
            if path.is_symlink():
                # os.walk lists directory symlinks here and never descends into them.
                passed_over(path.relative_to(root).as_posix(), "symlink to a folder (not followed)")
                continue
            if path in skip_set or (path / "pyvenv.cfg").exists():
                continue
            if skip_dir is not None and skip_dir(path):
                continue
            keep.append(d)
        dirnames[:] = keep
        names = skip_names(here) if skip_names is not None else frozenset()
        for name in sorted(filenames):
            if name.startswith(".") or name in names:
                continue
            path = here / name
            rel = path.relative_to(root).as_posix()
            if ignores.ignored(rel):
                continue
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            asset = asset_reason(name)
            if asset and not (include and _matches(rel, include)):
                passed_over(rel, asset)  # an asset, not text to search: unless asked for
                continue
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except RuntimeError:  # Python < 3.13 raises this for a loop
                    passed_over(rel, "symlink loop")
                    continue
                except OSError as e:
                    loop = e.errno == errno.ELOOP
                    passed_over(rel, "symlink loop" if loop else "broken symlink (target missing)")
                    continue
                if not target.is_relative_to(root):
                    passed_over(rel, "symlink to outside the folder")
                    continue
            try:
                st = path.stat()
            except OSError as e:
                passed_over(rel, f"cannot read its details ({e.strerror or e})")
                continue
            if not stat.S_ISREG(st.st_mode):
                passed_over(rel, "not a regular file")  # FIFO, socket, device: never opened
                continue
            name = stored_name(rel)
            yield FileStat(name, st.st_size, st.st_mtime_ns, None if name == rel else rel)


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[io.BufferedReader]:
    """Open a file for reading only if it is a regular file, without ever blocking.

    ``O_NONBLOCK`` makes opening a FIFO return at once (a plain open waits for a writer, and a
    file can become a FIFO between the walk and the read); ``fstat`` then refuses it.

    Raises:
        SkipFile: not a regular file, or permission denied.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        raise SkipFile("permission denied") from None
    except IsADirectoryError:
        raise SkipFile("not a regular file") from None
    except (FileNotFoundError, NotADirectoryError):
        raise Vanished() from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SkipFile("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            yield f
    finally:
        os.close(fd)


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file (:func:`open_regular`)."""
    with open_regular(path) as f:
        return f.read()


def file_sha256(path: Path) -> str:
    """sha256 of a regular file, read in blocks (:func:`open_regular`)."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _utf16_order(data: bytes) -> str | None:
    """ "utf-16-le" / "utf-16-be" when BOM-less bytes have UTF-16's shape, else None.

    Text in UTF-16 that is mostly Latin script has a NUL as the high byte of nearly every
    character: at odd offsets for little-endian, even ones for big-endian. Binary data does not
    put NULs on one side only.
    """
    head = data[:8192]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    nul_even, nul_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if nul_odd > 0.6 and nul_even < 0.05:
        return "utf-16-le"
    if nul_even > 0.6 and nul_odd < 0.05:
        return "utf-16-be"
    return None


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM allowed), UTF-16 with or without a BOM, or UTF-8 with a few bad bytes
    replaced. A few stray NUL bytes in text are dropped; more make the file binary.

    Raises:
        SkipFile: for binary data or text that is not sensibly UTF-8.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _no_nul(data.decode("utf-16", errors="replace"))
    nuls = data.count(0)
    if nuls:
        order = _utf16_order(data)
        if order is not None and len(data) % 2 == 0:
            try:
                return _no_nul(data.decode(order))
            except UnicodeDecodeError:
                pass
        # A NUL in the first block, or more than one byte in a thousand: binary data.
        if b"\x00" in data[:8192] or nuls > len(data) // 1000:
            raise SkipFile("binary file (contains NUL bytes)")
        data = data.replace(b"\x00", b"")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        if bad <= max(1, len(text) // 200):  # a stray byte or two: keep the text
            return text
        raise SkipFile(f"not UTF-8 text ({bad} undecodable bytes); convert it to UTF-8") from None


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


def _html(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _pdf(data: bytes) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted PDF (needs a password)")
        parts, pages, offset = [], [], 0
        for number, page in enumerate(reader.pages, start=1):
            text = _no_nul(page.extract_text() or "").strip()
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


def _parts(data: bytes, suffix: str, max_text: int) -> Document:
    """A document made of numbered parts (slides, sheets, chapters, cells): see :mod:`.formats`."""
    try:
        found = parts(data, suffix, max_text)
    except FormatError as e:
        raise SkipFile(f"unreadable {suffix[1:].upper()} file ({e})") from None
    texts, pages, offset = [], [], 0
    for number, text in found:
        text = _no_nul(text)
        if number is not None:
            pages.append((number, offset))
        texts.append(text)
        offset += len(text) + 2
    return Document("\n\n".join(texts), pages)


def load(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Read one file as text.

    Args:
        max_bytes: the file size limit; the text taken from an archive format (DOCX, XLSX,
            ...) is held to it too, since a small archive can unpack to far more.

    Raises:
        SkipFile: with the reason, for anything that yields no usable text. A loader that fails
            on a malformed file in a way nobody foresaw is reported the same way (its error's
            type and message as the reason): one odd file never stops a folder.
    """
    suffix = path.suffix.lower()
    if suffix in BINARY_SUFFIXES:
        raise SkipFile(f"binary format ({suffix})")
    data = read_regular(path)
    try:
        if suffix == ".pdf":
            doc = _pdf(data)
        elif suffix in OFFICE_SUFFIXES:
            doc = _parts(data, suffix, max_bytes)
        else:
            doc = Document(_html(data) if suffix in HTML_SUFFIXES else decode_text(data))
        if not doc.text.strip():
            raise SkipFile("empty (no text)")
        if len(doc.text) > max_bytes:
            raise SkipFile(f"its text is longer than the size limit ({max_bytes:,} characters)")
        doc.headings = headings(doc.text, suffix)
    except SkipFile:
        raise
    except PermissionError:
        raise SkipFile("permission denied") from None
    except RecursionError:
        raise SkipFile("unreadable (nested too deeply)") from None
    except Exception as e:
        raise SkipFile(f"unreadable ({type(e).__name__}: {e})") from None
    return doc
