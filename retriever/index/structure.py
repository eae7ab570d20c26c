"""Where a chunk sits in its document: line numbers, the heading path, and code fences.

* Lines are 1-based and counted in the loaded text, which for plain-text files is the file
  itself (``path:line`` points at the right line in an editor); for HTML and PDF it is the
  extracted text.
* The heading path of a Markdown or reStructuredText document at an offset is the chain of
  headings above it, outermost first: ``Tutorial > Query Parameters > Defaults``. Markdown ATX
  (``## Title``) and setext (``Title`` over ``===`` / ``---``) headings count; reST titles are
  underlined (optionally overlined) with one punctuation character, and their levels follow the
  order in which the styles first appear, as docutils does. Nothing inside a code fence is a
  heading.
* Code fences (```` ``` ```` or ``~~~``) are kept whole by the chunker unless a fence alone is
  longer than a chunk.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
RST_SUFFIXES = {".rst"}
HEADING_SEP = " > "

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[`~]*[ \t]*$", re.M | re.S)
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_ADORN = re.compile(r"^([=\-~^\"'`*+#<>:_.!$%&,;/?@\\|])\1{2,}[ \t]*$")


def code_fences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each closed fenced code block, in order."""
    return [(m.start(), m.end()) for m in _FENCE.finditer(text)]


class Lines:
    """Offsets -> 1-based line numbers for one text."""

    def __init__(self, text: str):
        self._breaks = [m.start() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> int:
        """The line holding the character at ``offset``."""
        return bisect.bisect_right(self._breaks, offset - 1) + 1

    def span(self, start: int, end: int) -> tuple[int, int]:
        """First and last line of ``text[start:end]``."""
        return self.at(start), self.at(max(start, end - 1))


def headings(text: str, suffix: str) -> list[tuple[int, str]]:
    """(offset of the heading line, heading path) for each heading, in order; empty for files
    that are neither Markdown nor reST."""
    suffix = suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        found = _markdown(text)
    elif suffix in RST_SUFFIXES:
        found = _rst(text)
    else:
        return []
    out, stack = [], []  # stack of (level, title)
    for offset, level, title in found:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        out.append((offset, HEADING_SEP.join(t for _, t in stack)))
    return out


def heading_at(marks: list[tuple[int, str]], offset: int) -> str | None:
    """The heading path in force at ``offset`` (None before the first heading)."""
    i = bisect.bisect_right(marks, offset, key=lambda m: m[0]) - 1
    return marks[i][1] if i >= 0 else None


def _lines(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def _in_fence(fences: list[tuple[int, int]], offset: int) -> bool:
    i = bisect.bisect_right(fences, offset, key=lambda f: f[0]) - 1
    return i >= 0 and offset < fences[i][1]


def _markdown(text: str) -> list[tuple[int, int, str]]:
    fences = code_fences(text)
    lines = _lines(text)
    found = []
    for k, (offset, line) in enumerate(lines):
        if _in_fence(fences, offset):
            continue
        m = _ATX.match(line)
        if m:
            found.append((offset, len(m.group(1)), m.group(2).strip()))
            continue
        if k + 1 < len(lines) and line.strip() and not line.startswith((" " * 4, "\t")):
            under = _SETEXT.match(lines[k + 1][1])
            if under and not _in_fence(fences, lines[k + 1][0]):
                found.append((offset, 1 if under.group(1)[0] == "=" else 2, line.strip()))
    return found


def _rst(text: str) -> list[tuple[int, int, str]]:
    lines = _lines(text)
    styles: list[tuple[str, bool]] = []  # (character, overlined), in order of first use
    found = []
    k = 0
    while k + 1 < len(lines):
        offset, line = lines[k]
        over = _RST_ADORN.match(line)
        if over and k + 2 < len(lines):  # overline, title, underline
            title, under = lines[k + 1][1], _RST_ADORN.match(lines[k + 2][1])
            if title.strip() and under and under.group(1) == over.group(1):
                style = (over.group(1), True)
                styles += [style] if style not in styles else []
                found.append((lines[k + 1][0], styles.index(style) + 1, title.strip()))
                k += 3
                continue
        under = _RST_ADORN.match(lines[k + 1][1])
        if (
            line.strip()
            and not _RST_ADORN.match(line)
            and under
            and (len(lines[k + 1][1].rstrip()) >= len(line.rstrip()))
        ):
            style = (under.group(1), False)
            styles += [style] if style not in styles else []
            found.append((offset, styles.index(style) + 1, line.strip()))
            k += 2
            continue
        k += 1
    return found


@dataclass
class Span:
    start: int
    end: int


def citation(doc, lines: Lines, chunk) -> dict:
    """Where a chunk sits: offsets, page, first and last line, heading path."""
    first, last = lines.span(chunk.start, chunk.end)
    return {
        "start": chunk.start,
        "end": chunk.end,
        "page": doc.page_at(chunk.start),
        "start_line": first,
        "end_line": last,
        "heading": doc.heading_at(chunk.start),
    }
