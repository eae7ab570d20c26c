"""Token-aware chunking with the embedder's own tokenizer, keeping exact character offsets.

The text is cut into *units*: sentences within paragraphs, and each fenced code block whole (a
unit longer than a chunk is cut at token boundaries, so only a fence longer than a chunk is ever
split). Units are packed greedily into chunks of at most ``chunk_size`` tokens; a
chunk closes early at a paragraph break once it is at least half full, so chunks prefer to end
where the author ended a thought. The next chunk starts with the trailing units of the previous
one that fit in ``overlap`` tokens. Each chunk's text is exactly ``source[start:end]``.

No chunk is contained in its neighbour: when the overlap would leave the next chunk no room for
a new unit (the unit after it is long), that chunk starts without overlap instead. No small
chunk where merging is possible: a chunk under a quarter of ``chunk_size``, anywhere in the text,
is merged into a neighbour when the two fit in ``chunk_size`` together (the one that leaves the
smaller chunk); a text's last chunk that still cannot merge starts earlier (taking more of the
previous chunk's text) until it is half full. Short chunks such as a closing line or a copyright
notice carry little meaning and become *hubs* for a small model's dense vectors: measured on a
held-out set, chunks under 50 tokens (5% of an index) took 4 of every top-10 places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..sentences import sentence_spans
from .structure import code_fences

_PARA = re.compile(r"\n\s*\n")


@dataclass
class Chunk:
    """A span of the source text; ``tokens`` counts the tokenizer's tokens in it."""

    text: str
    start: int
    end: int
    tokens: int


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int
    para_start: bool


class Chunker:
    """Splits texts into chunks of at most ``chunk_size`` tokens.

    Args:
        tokenizer: a Hugging Face fast tokenizer (the embedder's).
        chunk_size: maximum tokens per chunk.
        overlap: tokens of trailing context repeated at the start of the next chunk.
    """

    def __init__(self, tokenizer, chunk_size: int = 256, overlap: int = 32):
        if chunk_size < 8:
            raise ValueError("chunk_size must be at least 8 tokens")
        if not 0 <= overlap < chunk_size // 2 + 1:
            raise ValueError("overlap must be between 0 and half the chunk size")
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size
        self.overlap = overlap

    def _spans(self, text: str) -> list[tuple[int, int, bool]]:
        spans, pos = [], 0
        for start, end in code_fences(text):  # prose between fences, then the fence whole
            spans += self._prose_spans(text, pos, start)
            spans.append((start, end, True))
            pos = end
        return spans + self._prose_spans(text, pos, len(text))

    def _prose_spans(self, text: str, lo: int, hi: int) -> list[tuple[int, int, bool]]:
        spans = []
        pos = lo
        for para in [*_PARA.finditer(text, lo, hi), None]:
            p_end = para.start() if para else hi
            for k, (s, e) in enumerate(sentence_spans(text, pos, p_end)):
                spans.append((s, e, k == 0))
            pos = para.end() if para else hi
        return spans

    def _units(self, text: str) -> list[_Unit]:
        spans = self._spans(text)
        if not spans:
            return []
        enc = self.tokenizer(
            [text[s:e] for s, e, _ in spans],
            add_special_tokens=False,
            return_offsets_mapping=True,
        )
        units = []
        for (s, e, para), offsets in zip(spans, enc["offset_mapping"], strict=True):
            n = len(offsets)
            if n <= self.chunk_size:
                units.append(_Unit(s, e, n, para))
                continue
            for k in range(0, n, self.chunk_size):  # an over-long sentence: cut at tokens
                piece = offsets[k : k + self.chunk_size]
                a, b = s + piece[0][0], s + piece[-1][1]
                # byte-level BPE tokens carry their leading space; keep offsets on real text
                a += len(text[a:b]) - len(text[a:b].lstrip())
                b -= len(text[a:b]) - len(text[a:b].rstrip())
                if b > a:
                    units.append(_Unit(a, b, len(piece), para and k == 0))
        return units

    def split(self, text: str) -> list[Chunk]:
        """Chunks of ``text`` in order."""
        units = self._units(text)
        spans: list[tuple[int, int]] = []  # per chunk: [first unit, last unit + 1)
        i = 0
        while i < len(units):
            j = self._fill(units, i)
            if spans and j <= spans[-1][1]:
                # The overlap left no room for a new unit: this chunk would lie inside the
                # previous one. Start it where the previous one ends instead.
                i = spans[-1][1]
                j = self._fill(units, i)
            spans.append((i, j))
            if j >= len(units):
                break
            # Overlap: step back over trailing units that fit in the overlap budget.
            back, k = 0, j
            while k - 1 > i and back + units[k - 1].tokens <= self.overlap:
                back += units[k - 1].tokens
                k -= 1
            i = k
        spans = self._no_tiny_tail(units, self._merge_small(units, spans))
        chunks = []
        for a, b in spans:
            start, end = units[a].start, units[b - 1].end
            chunks.append(Chunk(text[start:end], start, end, sum(u.tokens for u in units[a:b])))
        return chunks

    def _fill(self, units: list[_Unit], i: int) -> int:
        """The end (exclusive) of a chunk starting at unit ``i``: units are added while they
        fit, and the chunk closes early at a paragraph break once it is half full."""
        j, total = i, 0
        while j < len(units) and total + units[j].tokens <= self.chunk_size:
            if j > i and units[j].para_start and total >= self.chunk_size // 2:
                break
            total += units[j].tokens
            j += 1
        return max(j, i + 1)

    def _merge_small(self, units: list[_Unit], spans: list[tuple[int, int]]):
        """Merge each chunk under a quarter of ``chunk_size`` into the neighbour that makes the
        smaller chunk, when the two fit in ``chunk_size`` together; repeat until none can."""

        def tokens(a: int, b: int) -> int:
            return sum(u.tokens for u in units[a:b])

        small = self.chunk_size // 4
        spans = list(spans)
        merged = True
        while merged and len(spans) > 1:
            merged = False
            for n, (a, b) in enumerate(spans):
                if tokens(a, b) >= small:
                    continue
                options = []
                for m in (n - 1, n + 1):
                    if 0 <= m < len(spans):
                        lo, hi = min(a, spans[m][0]), max(b, spans[m][1])
                        if tokens(lo, hi) <= self.chunk_size:
                            options.append((tokens(lo, hi), m, (lo, hi)))
                if options:
                    _, m, union = min(options)
                    spans[min(n, m)] = union
                    del spans[max(n, m)]
                    merged = True
                    break
        return spans

    def _no_tiny_tail(self, units: list[_Unit], spans: list[tuple[int, int]]):
        """A last chunk still too small (it could not merge) starts earlier until half full."""
        if len(spans) < 2:
            return spans
        a, b = spans[-1]
        tail = sum(u.tokens for u in units[a:b])
        if tail >= self.chunk_size // 4:
            return spans
        pa, _ = spans[-2]
        while a > pa + 1 and tail < self.chunk_size // 2:
            if tail + units[a - 1].tokens > self.chunk_size:
                break
            a -= 1
            tail += units[a].tokens
        return [*spans[:-1], (a, b)]
