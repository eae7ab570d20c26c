"""Situated chunk embeddings: each chunk embedded inside its document, one pass per window.

Design (late chunking, Günther et al. 2024, made training-free for a causal LM). Chunk-alone
embedding wraps every chunk in its own prompt: a chunk that says "the results above" never sees
them, and overlaps are read twice. Here the chunker's chunks and offsets stay as they are, but
the model reads the *document*:

* A document's chunks are grouped into **windows** of at most ``window`` tokens of text (all
  of a short document; a long one in several), each with up to ``margin`` tokens of the text
  before its first chunk as context (:func:`windows`).
* One prompt per window: the window's text in the embedder's document template. With an echo
  template (the text twice) every chunk is pooled over **its own span in the second copy**,
  where each of its tokens has already seen the whole window under causal attention; with a
  one-copy template it is pooled over its span in that copy (plain late chunking: a chunk sees
  only what precedes it). TP's ``<PST>`` slot, where the template has one, works as for a
  sentence (it receives the window's last token).
* Pooling is the embedder's: ``mean`` over the span, ``last`` the span's last token,
  ``last+mean`` both (:func:`span_poolers`).

A window's prompt holds ``copies x (window + margin)`` tokens plus the template, whatever the
document's length, so memory is bounded by ``window``. A text with no document (a VectorStore
text) is its own window: the same as embedding it alone under the same template. The
pre-processing that changes lengths (strip, a final period) is not applied to windows; quotes
become apostrophes as in :func:`~retriever.embed.prompts.preprocess`, which keeps offsets.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .backbone import Batch
from .batching import Encoded, make_batches
from .pooling import COMBINED, _normalize, combine_poolings
from .prompts import parse_template

Span = tuple[int, int]  # characters [start, end) of a chunk in its document


@dataclass(frozen=True)
class Window:
    """Part of a document read in one pass.

    Attributes:
        text: the window's text (its margin of context, then its chunks' text).
        spans: the chunks' character spans within ``text``.
        chunks: the chunks' positions in the document's chunk list.
    """

    text: str
    spans: tuple[Span, ...]
    chunks: tuple[int, ...]


def margin_for(window: int) -> int:
    """Tokens of preceding context a window carries (a quarter of it, at most 256)."""
    return min(256, window // 4)


def windows(tokenizer, text: str, spans: Sequence[Span], window: int) -> list[Window]:
    """Group a document's chunks into windows of at most ``window`` tokens of chunk text.

    Chunks are taken in order; a window closes when the next chunk would end more than
    ``window`` tokens after the window's first chunk starts (a chunk longer than that gets a
    window of its own). Each window starts up to :func:`margin_for` tokens before its first
    chunk.
    """
    if not spans:
        return []
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    starts = [a for a, _ in offsets] or [0]

    def token_at(char: int) -> int:
        return max(0, bisect.bisect_right(starts, char) - 1)

    margin = margin_for(window)
    out: list[Window] = []
    group: list[int] = []
    for i, (a, b) in enumerate(spans):
        if group and token_at(max(b - 1, a)) - token_at(spans[group[0]][0]) >= window:
            out.append(_window(text, spans, group, starts, token_at, margin))
            group = []
        group.append(i)
    out.append(_window(text, spans, group, starts, token_at, margin))
    return out


def _window(text, spans, group, starts, token_at, margin) -> Window:
    first = token_at(spans[group[0]][0])
    begin = min(starts[max(0, first - margin)], spans[group[0]][0])
    end = max(spans[i][1] for i in group)
    local = tuple((spans[i][0] - begin, spans[i][1] - begin) for i in group)
    return Window(text[begin:end], local, tuple(group))


def span_tokens(offsets, start: int, spans: Sequence[Span], shift: int) -> list[Span]:
    """Token ranges [t0, t1) of character ``spans`` of a text that begins at character
    ``start`` of the tokenized prompt; ``shift`` is added to every token index."""
    firsts = [a for a, _ in offsets]
    out = []
    for a, b in spans:
        t0 = bisect.bisect_right(firsts, start + a) - 1
        t0 = max(t0, 0)
        while t0 < len(offsets) and offsets[t0][1] <= start + a:  # a token ending before it
            t0 += 1
        t1 = bisect.bisect_left(firsts, start + b)
        out.append((t0 + shift, max(t1, t0 + 1) + shift))
    return out


def span_poolers(
    rows: Sequence[int], spans: Sequence[Span]
) -> dict[str, Callable[[torch.Tensor, Batch], torch.Tensor]]:
    """Poolers over chunk spans (row ``rows[i]``, tokens ``spans[i]``): [n spans, H] each.
    The mean comes from a running sum over the sequence: no [spans, T, H] copy."""
    index = torch.tensor(rows)
    t0 = torch.tensor([s for s, _ in spans])
    t1 = torch.tensor([e for _, e in spans])

    def mean(hidden: torch.Tensor, _batch: Batch) -> torch.Tensor:
        dev = hidden.device
        total = hidden.float().cumsum(1)
        r, a, b = index.to(dev), t0.to(dev), t1.to(dev)
        upto_b = total[r, b - 1]
        before_a = torch.where((a > 0)[:, None], total[r, (a - 1).clamp(min=0)], 0.0)
        return (upto_b - before_a) / (b - a).clamp(min=1)[:, None].float()

    def last(hidden: torch.Tensor, _batch: Batch) -> torch.Tensor:
        return hidden[index.to(hidden.device), (t1 - 1).to(hidden.device)]

    return {"mean": mean, "last": last}


def pool_documents(
    embedder, template, documents: Sequence[tuple[str, Sequence[Span]]], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Every chunk of ``documents`` pooled inside its windows under one parsed template:
    ``{pooling name: [all chunks, H]}``, chunks in document order."""
    layer = embedder.config.output_layer
    got = pool_layers(embedder, template, documents, names, [layer])
    return {name: got[(layer, name)] for name in names}


def pool_layers(
    embedder,
    template,
    documents: Sequence[tuple[str, Sequence[Span]]],
    names: Sequence[str],
    layers: Sequence[int],
    prompt: Callable[[Window], tuple[Encoded, list[Span]]] | None = None,
) -> dict[tuple[int, str], np.ndarray]:
    """:func:`pool_documents` at several output layers from one pass (a layer sweep costs one
    pass to the deepest): ``{(layer, pooling name): [all chunks, H]}``.

    ``prompt`` builds a window's prompt and its chunks' token ranges in place of ``template``'s
    (a benchmark measures other prompt layouts through it, e.g. ``<PST>`` slots per chunk)."""
    c = embedder.config
    if prompt is None:
        prompt = lambda w: _prompt(embedder, template, w)  # noqa: E731
    items: list[tuple[Encoded, list[int], list[Span]]] = []  # prompt, chunk rows, token spans
    first = 0
    for text, spans in documents:
        if c.preprocess:
            text = text.replace('"', "'")  # the clean-up that keeps offsets
        for w in windows(embedder.tokenizer, text, spans, c.window):
            encoded, tokens = prompt(w)
            items.append((encoded, [first + i for i in w.chunks], tokens))
        first += len(spans)
    hidden = embedder.backbone.hidden_size
    out = {(k, n): np.zeros((first, hidden), np.float32) for k in layers for n in names}
    if not items:
        return out
    rng = (c.tp_start, c.tp_exit) if c.tp else None
    pst = embedder._pst_for(rng)
    widest = max(len(e.ids) for e, _, _ in items)
    size = max(1, c.batch_size * c.max_length // widest)  # about a usual batch's tokens
    for idx, batch in make_batches([e for e, _, _ in items], size, embedder._pad_id):
        width = batch.input_ids.shape[1]
        rows, spans, targets = [], [], []
        for row, i in enumerate(idx):
            encoded, chunk_rows, tokens = items[i]
            pad = width - len(encoded.ids)
            rows += [row] * len(tokens)
            spans += [(a + pad, b + pad) for a, b in tokens]
            targets += chunk_rows
        poolers = {n: f for n, f in span_poolers(rows, spans).items() if n in names}
        got = embedder.backbone.run(batch, pst, rng, list(layers), poolers)
        for key in out:
            out[key][targets] = got[key].cpu().numpy()
    return out


def _prompt(embedder, template, w: Window) -> tuple[Encoded, list[Span]]:
    """A window's prompt as token ids, and its chunks' token ranges in the pooled copy."""
    left, right, start, _ = template.render(w.text)
    tok = embedder.tokenizer
    if template.tp:
        head = tok(template.head, add_special_tokens=True)["input_ids"]
        enc = tok(right, add_special_tokens=False, return_offsets_mapping=True)
        shift = len(head) + 1
        ids = [*head, embedder._pad_id, *enc["input_ids"]]
        pst = len(head)
    else:
        enc = tok(left, add_special_tokens=True, return_offsets_mapping=True)
        ids, shift, pst = list(enc["input_ids"]), 0, None
    offsets = enc["offset_mapping"]
    tokens = span_tokens(offsets, start, w.spans, shift)
    return Encoded(ids, pst, tokens[0][0], tokens[-1][1]), tokens


def encode_chunks(embedder, documents, normalize_embeddings: bool | None = None) -> list:
    """:meth:`~retriever.embed.embedder.TPEmbedder.encode_chunks`: one [chunks, dimension]
    array per (document text, chunk spans), averaged over the document templates as
    ``encode`` averages them; with ``window`` 0 each chunk's text is embedded alone."""
    c = embedder.config
    sizes = [len(spans) for _, spans in documents]
    if not c.window:
        texts = [text[a:b] for text, spans in documents for a, b in spans]
        flat = embedder.encode(texts, normalize_embeddings=normalize_embeddings)
    else:
        names = list(COMBINED.get(c.pooling, (c.pooling,)))
        acc: dict = {n: 0.0 for n in names}
        for tpl_text in c.templates():
            got = pool_documents(embedder, parse_template(tpl_text, tp=c.tp), documents, names)
            acc = {n: acc[n] + got[n] for n in names}
        normalize = c.normalize if normalize_embeddings is None else normalize_embeddings
        if c.pooling in COMBINED:
            flat = combine_poolings([acc[n] for n in names])
        else:
            flat = acc[c.pooling] / len(c.templates())
            flat = _normalize(flat) if normalize else flat
    flat = np.asarray(flat, np.float32).reshape(sum(sizes), -1)
    return np.split(flat, np.cumsum(sizes)[:-1]) if sizes else []
