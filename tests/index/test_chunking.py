"""Token-aware chunking: sizes, overlap, boundaries and exact offsets."""

from __future__ import annotations

import itertools

import pytest

from retriever.index.chunking import Chunker

TEXT = (
    "The first paragraph has a sentence. It has another one too.\n\n"
    "Second paragraph starts here. It is about token prepending and retrieval. "
    "A third sentence makes it longer.\n\n"
    + " ".join(["word"] * 120)
    + "\n\nFinal short paragraph."
)


@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (24, 6), (64, 8)])
def test_chunks_fit_and_offsets_are_exact(tokenizer, size, overlap):
    chunks = Chunker(tokenizer, size, overlap).split(TEXT)
    assert len(chunks) > 1
    for c in chunks:
        assert c.text == TEXT[c.start : c.end] and c.text.strip() == c.text
        assert 0 < c.tokens <= size
        assert len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= size + 4
    # Every character of real text is covered, in order.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(TEXT) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_overlap_repeats_trailing_sentences(tokenizer):
    chunks = Chunker(tokenizer, 48, 20).split(TEXT)
    assert any(b.start < a.end for a, b in itertools.pairwise(chunks))
    no_overlap = Chunker(tokenizer, 48, 0).split(TEXT)
    assert all(b.start >= a.end for a, b in itertools.pairwise(no_overlap))


def test_prefers_paragraph_boundaries(tokenizer):
    chunks = Chunker(tokenizer, 40, 0).split(TEXT)
    assert chunks[0].text.endswith("another one too.")


def test_empty_text_gives_no_chunks(tokenizer):
    assert Chunker(tokenizer, 16, 0).split("  \n\n ") == []


def _sentences(n: int) -> str:
    return " ".join(f"Sentence {i} is about token prepending and retrieval." for i in range(n))


@pytest.mark.parametrize("n", range(2, 14))
def test_no_tiny_tail_chunk(tokenizer, n):
    size = 48
    text = _sentences(n) + "\n\nThe end."
    chunks = Chunker(tokenizer, size, 8).split(text)
    assert all(0 < c.tokens <= size and c.text == text[c.start : c.end] for c in chunks)
    assert chunks[-1].end == len(text)
    if len(chunks) > 1:
        assert chunks[-1].tokens >= size // 4, [c.tokens for c in chunks]


def test_tiny_tail_is_merged_when_it_fits(tokenizer):
    # One short paragraph after a chunk that closed early at a paragraph break.
    text = _sentences(3) + "\n\nThe end."
    size = 80
    before = Chunker(tokenizer, size, 0)
    assert len(before.split(_sentences(3))) == 1
    chunks = before.split(text)
    assert len(chunks) == 1 and chunks[0].text == text and chunks[0].tokens <= size


def test_a_text_that_is_all_tail_stays_one_chunk(tokenizer):
    (chunk,) = Chunker(tokenizer, 64, 8).split("The end.")
    assert chunk.text == "The end."
