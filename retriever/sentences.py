"""Where sentences end: the one splitter shared by the chunker and Hierarchical TP.

A sentence ends at whitespace after ``.``, ``!``, ``?`` or ``。``, and at every line break. It is
a rule, not a model (no spaCy download is possible here): good enough to pack chunks and to place
HTP's block summaries, which only need boundaries near where a thought ends.
"""

from __future__ import annotations

import re

SENTENCE_BREAK = re.compile(r"(?<=[.!?。])\s+|\n")


def sentence_spans(text: str, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences in ``text[lo:hi]``, whitespace trimmed."""
    hi = len(text) if hi is None else hi
    spans, s = [], lo
    for m in [*SENTENCE_BREAK.finditer(text, lo, hi), None]:
        e = m.start() if m else hi
        piece = text[s:e]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece) - len(piece.rstrip())
            spans.append((s + lead, e - trail))
        s = m.end() if m else e
    return spans
