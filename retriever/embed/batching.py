"""Texts -> token ids -> left-padded, length-sorted batches.

Each prompt is tokenized as two strings: the part before ``<PST>`` (with the tokenizer's special
tokens, i.e. BOS) and the part after it (without), with the <PST> slot between them. That is how
a tokenizer with ``<PST>`` added as a special token splits the prompt in the reference code; here
the slot gets its vector in ``inputs_embeds`` instead of from a resized vocabulary. In vanilla
mode the whole prompt is one string.

Truncation cuts the *sentence*, never the prompt: ``means in one word:"`` must stay the last
tokens or the last-token embedding means nothing. The sentence's own token span (from the fast
tokenizer's offsets) is kept for mean pooling.

Batches are formed over texts sorted by token length, longest first, so padding is minimal and an
out-of-memory error shows up on the first batch; callers restore the original order.

Hierarchical TP (``blocks`` > 0) expands the one ``<PST>`` slot into a global slot followed by one
slot per sentence block, all before the text: ``head <G> <B1> .. <Bn> pre TEXT post``. Every
token can then attend to a summary of every block, not only to one summary of the whole text. In
the TP layers the global slot receives the last token's state (as in TP) and slot ``Bi`` the state
of block i's last token (:class:`Encoded.slots`). Sentences come from
:func:`retriever.sentences.sentence_spans`; beyond ``blocks`` sentences, neighbours are grouped
so that there are ``blocks`` groups of near-equal sentence counts.

An echo template holds the text twice; the pooled span is the second copy, and truncation cuts
both copies equally.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from ..errors import ConfigError
from ..sentences import sentence_spans
from .backbone import Batch
from .prompts import Template


@dataclass
class Encoded:
    """One prompt as token ids: ``ids``, the <PST> slot index (or None) and the text span.

    ``slots`` are Hierarchical TP's block slots: (slot position, position of the token whose
    state it receives), beside the global ``pst`` slot, which receives the last token's.
    """

    ids: list[int]
    pst: int | None
    text_start: int
    text_end: int
    slots: tuple[tuple[int, int], ...] = ()


class PromptTokenizer:
    """Renders and tokenizes prompts for one template.

    Args:
        tokenizer: a Hugging Face *fast* tokenizer (offsets are needed for the text span).
        template: the parsed template.
        max_length: upper bound on a prompt's length in tokens, <PST> included.
        placeholder_id: id put in the <PST> slot; its embedding is replaced, so any valid id does.
        blocks: Hierarchical TP's most block slots per text (0 = plain TP, one slot).
    """

    def __init__(
        self,
        tokenizer,
        template: Template,
        max_length: int,
        placeholder_id: int,
        blocks: int = 0,
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(
                f"{type(tokenizer).__name__} is a slow tokenizer; a fast (tokenizers-backed) one "
                "is needed for character offsets: save the model with a tokenizer.json"
            )
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self.placeholder_id = placeholder_id
        self.blocks = blocks if template.tp else 0

    @cached_property
    def _head_ids(self) -> list[int]:
        return self.tokenizer(self.template.head, add_special_tokens=True)["input_ids"]

    def _encode_once(self, text: str) -> Encoded:
        left, right, start, end = self.template.render(text)
        if self.template.tp:
            head = self._head_ids
            enc = self.tokenizer(right, add_special_tokens=False, return_offsets_mapping=True)
            ends = self._block_ends(enc["offset_mapping"], start, text) if self.blocks else []
            offset = len(head) + 1 + len(ends)
            ids = [*head, *[self.placeholder_id] * (1 + len(ends)), *enc["input_ids"]]
            pst = len(head)
            slots = tuple((pst + 1 + b, offset + t) for b, t in enumerate(ends))
        else:
            enc = self.tokenizer(left, add_special_tokens=True, return_offsets_mapping=True)
            ids = list(enc["input_ids"])
            offset = 0
            pst = None
            slots = ()
        span = [
            i + offset
            for i, (a, b) in enumerate(enc["offset_mapping"])
            if b > a and a < end and b > start
        ]
        t0, t1 = (span[0], span[-1] + 1) if span else (offset, offset)
        return Encoded(ids, pst, t0, t1, slots)

    def _block_ends(self, offsets, start: int, text: str) -> list[int]:
        """Token index (in ``right``) of each block's last token; ``start`` is the text's offset."""
        firsts = [a for a, _ in offsets]
        ends = []
        for _, e in sentence_spans(text):
            t = bisect.bisect_left(firsts, start + e) - 1  # last token starting inside it
            if t >= 0 and (not ends or t > ends[-1]):
                ends.append(t)
        n = len(ends)
        if n > self.blocks:  # group neighbours: the last sentence of each of `blocks` groups
            ends = [ends[-(-(k + 1) * n // self.blocks) - 1] for k in range(self.blocks)]
        return ends

    def encode(self, text: str) -> Encoded:
        """Tokenize one (already pre-processed) text, cutting the text to fit ``max_length``."""
        e = self._encode_once(text)
        if len(e.ids) <= self.max_length:
            return e
        copies = self.template.copies
        overhead = len(e.ids) - copies * (e.text_end - e.text_start)
        budget = (self.max_length - overhead) // copies
        if budget < 1:
            raise ConfigError(
                f"max_length={self.max_length} leaves no room for the text: the prompt alone takes "
                f"{overhead} tokens; raise max_length or use a shorter template"
            )
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        # Re-tokenizing the cut text can merge differently at the edge; shrink until it fits.
        while budget >= 1:
            cut = offsets[min(budget, len(offsets)) - 1][1]
            e = self._encode_once(text[:cut])
            if len(e.ids) <= self.max_length:
                return e
            budget -= 1
        raise ConfigError(f"cannot fit any of the text into max_length={self.max_length}")


def make_batches(
    encoded: Sequence[Encoded], batch_size: int, pad_id: int
) -> Iterator[tuple[list[int], Batch]]:
    """Yield (original indices, Batch) over texts sorted longest first, left-padded."""
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].ids))
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        width = max(len(encoded[i].ids) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        text_mask = torch.zeros((len(idx), width), dtype=torch.long)
        pst = []
        rows, pos, src = [], [], []  # every slot of the batch: global ones, then block ones
        for row, i in enumerate(idx):
            e = encoded[i]
            pad = width - len(e.ids)
            ids[row, pad:] = torch.tensor(e.ids)
            mask[row, pad:] = 1
            text_mask[row, pad + e.text_start : pad + e.text_end] = 1
            if e.pst is not None:
                pst.append(pad + e.pst)
                rows.append(row)
                pos.append(pad + e.pst)
                src.append(width - 1)
            for slot, source in e.slots:
                rows.append(row)
                pos.append(pad + slot)
                src.append(pad + source)
        pst_index = torch.tensor(pst, dtype=torch.long) if pst else None
        slots = None
        if rows:
            slots = tuple(torch.tensor(x, dtype=torch.long) for x in (rows, pos, src))
        yield idx, Batch(ids, mask, pst_index, text_mask, slots)
