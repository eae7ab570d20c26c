"""Ignore files in a folder: ``.gitignore`` and ``.tprignore``, with git's rules (``!``
negation, ``dir/``, a deeper file's verdict wins), each applying to what lies below it.

A line git itself ignores (a lone ``!``, a range like ``[z-a]``, a trailing backslash) is left
out, as git leaves it out, and said once per file: one odd line never stops a folder.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

IGNORE_FILES = (".gitignore", ".tprignore")


class Ignores:
    """The gitignore-style pattern files met so far in a walk, by the folder they stand in."""

    def __init__(self, root: Path, names: Sequence[str]):
        self.root, self.names = root, tuple(names)
        self.specs: list[tuple[str, object]] = []  # (folder relative to root, "" or "a/b/")

    def enter(self, folder: Path) -> None:
        lines: list[str] = []
        for name in self.names:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if (folder / name).is_file():
                    lines += _valid_lines(folder / name, (folder / name).read_text().splitlines())
        if lines:
            import pathspec

            rel = folder.relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            self.specs.append((prefix, pathspec.GitIgnoreSpec.from_lines(lines)))

    def ignored(self, rel: str) -> bool:
        verdict = None
        for prefix, spec in self.specs:  # outer folders first: a deeper verdict wins
            if rel.startswith(prefix):
                result = spec.check_file(rel[len(prefix) :]).include
                if result is not None:
                    verdict = result
        return bool(verdict)


_warned_ignore_files: set[tuple[str, tuple[str, ...]]] = set()


def _valid_lines(where: Path, lines: list[str]) -> list[str]:
    """The lines of an ignore file that are patterns git can use. Lines git itself ignores (a
    lone ``!``, a trailing ``\\``, a range like ``[z-a]``) are left out, and said once per file
    and set of lines (logger ``retriever``), not once per folder walk."""
    import pathspec

    try:
        pathspec.GitIgnoreSpec.from_lines(lines)
        return lines
    except Exception:  # pathspec raises several types; find the culprits one line at a time
        pass
    good, bad = [], []
    for line in lines:
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
            good.append(line)
        except Exception:
            bad.append(line)
    key = (str(where), tuple(bad))
    if bad and key not in _warned_ignore_files:
        _warned_ignore_files.add(key)
        logging.getLogger("retriever").warning(
            "%s: ignored %d line(s) that are no valid pattern (git ignores them too): %s",
            where,
            len(bad),
            ", ".join(repr(b) for b in bad[:5]),
        )
    return good
