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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from ..errors import ConfigError
from .backbone import Batch
from .prompts import Template


@dataclass
class Encoded:
    """One prompt as token ids: ``ids``, the <PST> slot index (or None) and the text span."""

    ids: list[int]
    pst: int | None
    text_start: int
    text_end: int


class PromptTokenizer:
    """Renders and tokenizes prompts for one template.

    Args:
        tokenizer: a Hugging Face *fast* tokenizer (offsets are needed for the text span).
        template: the parsed template.
        max_length: upper bound on a prompt's length in tokens, <PST> included.
        placeholder_id: id put in the <PST> slot; its embedding is replaced, so any valid id does.
    """

    def __init__(self, tokenizer, template: Template, max_length: int, placeholder_id: int):
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(
                f"{type(tokenizer).__name__} is a slow tokenizer; a fast (tokenizers-backed) one "
                "is needed for character offsets: save the model with a tokenizer.json"
            )
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self.placeholder_id = placeholder_id

    @cached_property
    def _head_ids(self) -> list[int]:
        return self.tokenizer(self.template.head, add_special_tokens=True)["input_ids"]

    def _encode_once(self, text: str) -> Encoded:
        left, right, start, end = self.template.render(text)
        if self.template.tp:
            head = self._head_ids
            enc = self.tokenizer(right, add_special_tokens=False, return_offsets_mapping=True)
            ids = [*head, self.placeholder_id, *enc["input_ids"]]
            offset = len(head) + 1
            pst = len(head)
        else:
            enc = self.tokenizer(left, add_special_tokens=True, return_offsets_mapping=True)
            ids = list(enc["input_ids"])
            offset = 0
            pst = None
        span = [
            i + offset
            for i, (a, b) in enumerate(enc["offset_mapping"])
            if b > a and a < end and b > start
        ]
        t0, t1 = (span[0], span[-1] + 1) if span else (offset, offset)
        return Encoded(ids, pst, t0, t1)

    def encode(self, text: str) -> Encoded:
        """Tokenize one (already pre-processed) text, cutting the text to fit ``max_length``."""
        e = self._encode_once(text)
        if len(e.ids) <= self.max_length:
            return e
        overhead = len(e.ids) - (e.text_end - e.text_start)
        budget = self.max_length - overhead
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
        for row, i in enumerate(idx):
            e = encoded[i]
            pad = width - len(e.ids)
            ids[row, pad:] = torch.tensor(e.ids)
            mask[row, pad:] = 1
            text_mask[row, pad + e.text_start : pad + e.text_end] = 1
            if e.pst is not None:
                pst.append(pad + e.pst)
        pst_index = torch.tensor(pst, dtype=torch.long) if pst else None
        yield idx, Batch(ids, mask, pst_index, text_mask)
