"""TP mechanics on tiny random models of every supported family.

The reference here is written independently of ``retriever.embed.backbone``: it calls each decoder
layer by hand on one unpadded sequence, overwrites <PST> between layers itself, and applies the
final norm itself. The hook-based engine must reproduce it to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from retriever import EmbedderConfig, TPEmbedder, UnsupportedModelError
from retriever.embed.backbone import Backbone

from ..conftest import ARCHS, LAYERS

TEXT = "A man is playing a guitar."


def _stack(model):
    """(decoder layers, embed fn, per-layer call, final norm) written out per family."""
    if model.config.model_type == "gpt2":
        tr = model.transformer

        def embed(emb, pos):
            return emb + tr.wpe(pos)

        return tr.h, embed, (lambda i, layer, h, pos, mask: layer(h, attention_mask=mask)), tr.ln_f
    inner = model.model
    types = getattr(model.config, "layer_types", None)

    def call(i, layer, h, pos, mask):
        if types is not None and model.config.model_type in ("gemma3_text", "gemma2"):
            try:
                pe = inner.rotary_emb(h, pos, types[i])
            except TypeError:  # one rotary embedding for every layer type
                pe = inner.rotary_emb(h, pos)
        else:
            pe = inner.rotary_emb(h, pos)
        return layer(h, attention_mask=mask, position_embeddings=pe, position_ids=pos)

    return inner.layers, (lambda emb, pos: emb), call, inner.norm


def reference_embedding(model, ids, pst, pst_vec, tp_range, out_layer):
    """The TP embedding computed by an explicit layer loop (no hooks)."""
    slots = [(pst, len(ids) - 1)] if pst is not None else []
    return reference(model, ids, slots, pst_vec, tp_range or (0, 0), out_layer, lambda h: h[-1])


@torch.inference_mode()
def reference(model, ids, slots, pst_vec, tp_range, out_layer, pool):
    """An embedding by an explicit layer loop (no hooks): ``slots`` are (position, source
    position) pairs, each slot starts as ``pst_vec`` and, before each layer in ``tp_range``,
    receives its source's state from the previous layer; ``pool`` maps [T, H] to [H]."""
    layers, embed, call, norm = _stack(model)
    emb = model.get_input_embeddings()(torch.tensor([ids])).clone()
    for pos, _ in slots:
        emb[0, pos] = pst_vec
    pos_ids = torch.arange(len(ids))[None]
    h = embed(emb, pos_ids)
    n = len(ids)
    # Additive causal mask, explicit so that eager attention (Gemma 2) is causal too.
    mask = torch.full((n, n), torch.finfo(h.dtype).min).triu(1)[None, None]
    for i in range(out_layer):
        if tp_range[0] <= i < tp_range[1]:
            prev = h.clone()
            h = h.clone()
            for pos, src in slots:
                h[0, pos] = prev[0, src]
        h = call(i, layers[i], h, pos_ids, mask)
        h = h[0] if isinstance(h, tuple) else h
    if out_layer == len(layers):
        h = norm(h)
    return pool(h[0]).float().numpy()


def _embedder(model, tokenizer, **kw):
    kw.setdefault("preprocess", False)
    kw.setdefault("normalize", False)
    return TPEmbedder(model, tokenizer, EmbedderConfig(**kw))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("out_layer", [4, LAYERS])
def test_tp_matches_manual_layer_loop(arch, out_layer, tiny_models, tokenizer):
    model = tiny_models(arch)
    emb = _embedder(model, tokenizer, tp_start=1, tp_exit=3, output_layer=out_layer)
    enc = emb.tokenize(TEXT, tp=True)
    ref = reference_embedding(model, enc.ids, enc.pst, emb.pst_vector, (1, 3), out_layer)
    got = emb.encode(TEXT)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_vanilla_equals_model_hidden_state(arch, tiny_models, tokenizer):
    model = tiny_models(arch)
    for layer in (2, LAYERS):
        emb = _embedder(model, tokenizer, tp=False, output_layer=layer)
        enc = emb.tokenize(TEXT, tp=False)
        with torch.inference_mode():
            hs = model(torch.tensor([enc.ids]), output_hidden_states=True).hidden_states
        np.testing.assert_allclose(emb.encode(TEXT), hs[layer][0, -1].numpy(), atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gpt2"])
def test_tp_changes_the_embedding_but_not_tokens_before_pst(arch, tiny_models, tokenizer):
    model = tiny_models(arch)
    emb = _embedder(model, tokenizer, tp_start=1, tp_exit=4, output_layer=5)
    enc = emb.tokenize(TEXT, tp=True)
    bb = Backbone(model)
    from retriever.embed.batching import make_batches

    ((_, batch),) = make_batches([enc], 1, 0)
    flat = {"all": lambda h, b: h.flatten(1)}  # every position, not pooled
    with_tp = bb.run(batch, emb.pst_vector, (1, 4), [5], flat)[(5, "all")]
    no_tp = bb.run(batch, emb.pst_vector, None, [5], flat)[(5, "all")]
    before = enc.pst * bb.hidden_size
    # Causal attention: positions before <PST> never see it, so TP cannot change them ...
    torch.testing.assert_close(with_tp[:, :before], no_tp[:, :before], atol=1e-6, rtol=0)
    # ... while the last token does change.
    assert not torch.allclose(with_tp[:, -bb.hidden_size :], no_tp[:, -bb.hidden_size :], atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3", "gpt2", "mistral"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_invariance(arch, pooling, tokenizer):
    from ..conftest import build_model

    # A sliding window shorter than the longest prompt, to exercise local attention + padding.
    model = build_model(arch, len(tokenizer), sliding_window=12)
    emb = _embedder(model, tokenizer, tp_start=1, tp_exit=3, output_layer=LAYERS, pooling=pooling)
    texts = [
        "Short.",
        "The cat sat on the mat while the dog slept by the door, and nobody cared at all.",
        TEXT,
    ]
    assert_batch_equals_single(emb, texts, (arch, pooling))


def assert_batch_equals_single(emb, texts, label) -> None:
    """Each text embedded alone equals its row of one padded batch (cosine > 0.9999)."""
    batched = emb.encode(texts, batch_size=len(texts))
    for i, t in enumerate(texts):
        alone = emb.encode(t)
        cos = alone @ batched[i] / np.linalg.norm(alone) / np.linalg.norm(batched[i])
        assert cos > 0.9999, (label, i, cos)


def test_early_exit_runs_no_later_layer(tiny_models, tokenizer):
    model = tiny_models("llama")
    calls = []
    hooks = [
        layer.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
        for i, layer in enumerate(model.model.layers)
    ]
    head = model.lm_head.register_forward_hook(lambda *a: calls.append("lm_head"))
    try:
        _embedder(model, tokenizer, tp_start=1, tp_exit=2, output_layer=3).encode(TEXT)
    finally:
        for h in [*hooks, head]:
            h.remove()
    assert calls == [0, 1, 2]


def test_model_without_decoder_layers_is_refused(tokenizer):
    class NotADecoder(nn.Module):
        def __init__(self):
            super().__init__()
            from transformers import LlamaConfig

            self.config = LlamaConfig(num_hidden_layers=3)
            self.emb = nn.Embedding(10, 4)

        def get_input_embeddings(self):
            return self.emb

    with pytest.raises(UnsupportedModelError, match="decoder layers"):
        Backbone(NotADecoder())
