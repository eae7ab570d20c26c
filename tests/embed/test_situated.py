"""Situated chunks (``EmbedderConfig.window``) on a tiny random Llama: each chunk pooled over
its own span of one pass over its document's window, checked against transformers' own
``hidden_states`` of the same prompt, window by window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retriever import EmbedderConfig, TPEmbedder
from retriever.embed.prompts import METHODS, parse_template
from retriever.embed.situated import _prompt, margin_for, pool_documents, pool_layers, windows
from retriever.errors import ConfigError

LAYER = 3
DOC = (
    "The city was founded in 1842 by river traders. It grew around the port. "
    "Its first mayor built the bridge. The bridge still stands today. "
    "Later the railway came and the port declined. Tourists now visit the old quays."
)


def _spans(text: str, parts: int) -> list[tuple[int, int]]:
    """Chunk-like spans: sentence-aligned, in order, the last ending the text."""
    cuts = [i + 1 for i, ch in enumerate(text) if ch == "." and i + 1 < len(text)]
    bounds = [0, *[cuts[round(k * len(cuts) / parts) - 1] + 1 for k in range(1, parts)], len(text)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def _embedder(model, tokenizer, **kw):
    base = dict(prompt="echo-passage", tp=False, output_layer=LAYER, pooling="mean")
    base.update(preprocess=False, normalize=False)
    return TPEmbedder(model, tokenizer, EmbedderConfig(**{**base, **kw}))


def _reference(model, tokenizer, template: str, window_text: str, spans, pooling="mean"):
    """transformers' hidden_states of the window's prompt, pooled over each span's tokens in
    the last copy of the text (a separate implementation: offsets, no hooks)."""
    tpl = parse_template(template, tp=False)
    left, _, start, _ = tpl.render(window_text)
    enc = tokenizer(left, add_special_tokens=True, return_offsets_mapping=True)
    with torch.no_grad():
        out = model(torch.tensor([enc["input_ids"]]), output_hidden_states=True)
    hidden = out.hidden_states[LAYER][0]
    vectors = []
    for a, b in spans:
        inside = [
            i
            for i, (x, y) in enumerate(enc["offset_mapping"])
            if y > x and x < start + b and y > start + a
        ]
        h = hidden[inside]
        vectors.append((h.mean(0) if pooling == "mean" else h[-1]).numpy())
    return np.stack(vectors)


def _cos(a, b):
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("prompt", ["echo-passage", "topic-passage", "late-passage"])
def test_each_chunk_is_pooled_over_its_span_in_one_pass_over_the_document(
    tiny_models, tokenizer, pooling, prompt
):
    model = tiny_models("llama")
    emb = _embedder(model, tokenizer, window=4096, pooling=pooling, prompt=prompt)
    spans = _spans(DOC, 3)
    (got,) = emb.encode_chunks([(DOC, spans)])
    want = _reference(model, tokenizer, METHODS[prompt][0], DOC, spans, pooling)
    assert got.shape == (3, emb.dimension)
    assert _cos(got, want).min() > 0.9999


def test_a_chunk_in_its_document_differs_from_the_chunk_alone(tiny_models, tokenizer):
    model = tiny_models("llama")
    spans = _spans(DOC, 3)
    (situated,) = _embedder(model, tokenizer, window=4096).encode_chunks([(DOC, spans)])
    (alone,) = _embedder(model, tokenizer).encode_chunks([(DOC, spans)])
    direct = _embedder(model, tokenizer).encode([DOC[a:b] for a, b in spans])
    assert _cos(alone, direct).min() > 0.9999  # window 0: each chunk its own prompt
    assert _cos(situated, alone).max() < 0.999  # the document changed every chunk's vector


def test_late_chunking_reads_the_window_once_and_a_chunk_sees_only_what_precedes_it(
    tiny_models, tokenizer
):
    """``late`` (one copy of the window): the first chunk's vector ignores the text after it
    (causal attention), which is exactly what the echo window's second copy repairs."""
    model = tiny_models("llama")
    spans = _spans(DOC, 3)
    changed = DOC[: spans[2][0]] + "Nothing here is about a city at all, only spreadsheets."
    spans2 = [*spans[:2], (spans[2][0], len(changed))]
    late = _embedder(model, tokenizer, window=4096, prompt="late-passage")
    a, b = late.encode_chunks([(DOC, spans), (changed, spans2)])
    assert _cos(a[:2], b[:2]).min() > 0.9999  # what precedes them is unchanged
    assert _cos(a[2], b[2]).max() < 0.999
    echo = _embedder(model, tokenizer, window=4096)
    a, b = echo.encode_chunks([(DOC, spans), (changed, spans2)])
    assert _cos(a[0], b[0]).max() < 0.9999  # the second copy has read the whole window


def test_a_text_without_a_document_is_its_own_window(tiny_models, tokenizer):
    """The VectorStore's bare texts: under a window config each text is read as a one-chunk
    document, which is the echo embedding of that text alone."""
    model = tiny_models("llama")
    texts = ["The cat sat on the mat.", DOC, "Short text."]
    windowed = _embedder(model, tokenizer, window=4096).encode(texts)
    echo = _embedder(model, tokenizer).encode(texts)
    assert _cos(windowed, echo).min() > 0.9999
    assert _embedder(model, tokenizer, window=4096).encode(texts[0]).shape == (echo.shape[1],)


def test_long_documents_are_read_in_windows_with_a_margin(tiny_models, tokenizer):
    model = tiny_models("llama")
    doc = " ".join([DOC] * 4)
    spans = _spans(doc, 12)
    size = 48
    parts = windows(tokenizer, doc, spans, size)
    assert len(parts) > 2
    assert sorted(i for w in parts for i in w.chunks) == list(range(12))  # each chunk once
    margin = margin_for(size)
    for w in parts:
        first = spans[w.chunks[0]][0]
        context = w.text[: w.spans[0][0]]
        assert len(tokenizer(context, add_special_tokens=False)["input_ids"]) <= margin + 1
        assert (first == 0) == (context == "")
        if len(w.chunks) > 1:  # a window closes before it would pass `size` tokens
            text = doc[first : spans[w.chunks[-1]][1]]
            assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= size + 2
    emb = _embedder(model, tokenizer, window=size)
    (got,) = emb.encode_chunks([(doc, spans)])
    for w in parts:  # each window is one pass of its own: the reference, window by window
        want = _reference(model, tokenizer, METHODS["echo-passage"][0], w.text, w.spans)
        assert _cos(got[list(w.chunks)], want).min() > 0.9999


def test_batching_documents_together_changes_nothing(tiny_models, tokenizer):
    model = tiny_models("llama")
    emb = _embedder(model, tokenizer, window=40, batch_size=2)
    docs = [(DOC, _spans(DOC, 3)), ("One short line.", [(0, 15)]), (DOC * 2, _spans(DOC * 2, 5))]
    together = emb.encode_chunks(docs)
    alone = [emb.encode_chunks([d])[0] for d in docs]
    assert [len(v) for v in together] == [3, 1, 5]
    for a, b in zip(together, alone, strict=True):
        assert _cos(a, b).min() > 0.9999


def test_one_pass_pools_every_requested_layer_as_a_pass_per_layer_would(tiny_models, tokenizer):
    model = tiny_models("llama")
    docs = [(DOC, _spans(DOC, 3)), (DOC * 2, _spans(DOC * 2, 5))]
    emb = _embedder(model, tokenizer, window=40)
    tpl = parse_template(METHODS["echo-passage"][0], tp=False)
    swept = pool_layers(emb, tpl, docs, ["mean", "last"], [1, 2, LAYER])
    for layer in (1, 2, LAYER):
        one = pool_documents(
            _embedder(model, tokenizer, window=40, output_layer=layer), tpl, docs, ["mean", "last"]
        )
        for name in ("mean", "last"):
            assert swept[(layer, name)].shape == (8, one[name].shape[1])
            assert _cos(swept[(layer, name)], one[name]).min() > 0.9999
    assert _cos(swept[(1, "mean")], swept[(LAYER, "mean")]).min() < 0.999  # layers differ


def test_a_prompt_builder_replaces_the_templates_layout(tiny_models, tokenizer):
    # pool_layers(prompt=...) is how benchmarks try other layouts of a window (one copy,
    # slots per chunk): the chunks must be pooled over the spans the builder reports.
    model = tiny_models("llama")
    emb = _embedder(model, tokenizer, window=512, max_length=1024)
    echo = parse_template(METHODS["echo-passage"][0], tp=False)
    one_copy = 'Passage : "TEXT" means:"'
    calls = []

    def build(w):
        calls.append(w)
        return _prompt(emb, parse_template(one_copy, tp=False), w)

    spans = _spans(DOC, 3)
    got = pool_layers(emb, echo, [(DOC, spans)], ["mean"], [LAYER], prompt=build)
    want = _reference(model, tokenizer, one_copy, DOC, spans)
    assert len(calls) == 1  # one window: the document fits
    assert _cos(got[(LAYER, "mean")], want).min() > 0.9999
    shipped = pool_layers(emb, echo, [(DOC, spans)], ["mean"], [LAYER])
    assert _cos(shipped[(LAYER, "mean")], want).min() < 0.999  # the echo layout differs


def test_the_window_is_part_of_the_fingerprint_and_checked(tiny_models, tokenizer):
    model = tiny_models("llama")
    plain = _embedder(model, tokenizer)
    assert plain.fingerprint != _embedder(model, tokenizer, window=1024).fingerprint
    assert "window" not in plain._fingerprint_data()  # old indexes keep their fingerprint
    with pytest.raises(ConfigError, match="window"):
        _embedder(model, tokenizer, window=4)
    with pytest.raises(ConfigError, match="window"):
        _embedder(model, tokenizer, window=64, tp=True, htp=4, tp_start=1, tp_exit=2)


def test_cli_situated_fills_its_settings_and_indexes_with_them(tiny_model_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from retriever.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, [str(a) for a in args])

    model = ["--model", tiny_model_dir, "--json"]
    r = run("embed", DOC, *model, "--situated")
    assert r.exit_code == 0, r.output
    config = json.loads(r.stdout)["config"]
    assert config["window"] == 1024 and config["prompt"] == "echo-passage"
    assert config["tp"] is False and config["pooling"] == "mean"
    assert (
        json.loads(run("embed", DOC, *model, "--situated", "256").stdout)["config"]["window"] == 256
    )
    r = run("embed", DOC, *model, "--situated", "--echo")
    assert r.exit_code != 0 and "choose one" in r.output
    r = run("embed", DOC, *model, "--late")
    assert r.exit_code == 0, r.output
    config = json.loads(r.stdout)["config"]
    assert config["window"] == 1024 and config["prompt"] == "late-passage"
    assert config["tp"] is False and config["pooling"] == "mean"
    assert config["output_layer"] == 1  # -6 on the tiny model's 6 layers
    r = run("embed", DOC, *model, "--late", "--situated")
    assert r.exit_code != 0 and "choose one" in r.output
    r = run("embed", DOC, *model, "--tp-preset", "--tp-exit", "3")  # 8 is past a 6-layer model
    assert r.exit_code == 0, r.output
    config = json.loads(r.stdout)["config"]
    assert (config["prompt"], config["pooling"], config["tp"]) == (
        "promptreps-passage",
        "last+mean",
        True,
    )
    assert config["window"] == 0 and config["tp_exit"] == 3
    r = run("embed", DOC, *model, "--tp-preset", "--echo")
    assert r.exit_code != 0 and "choose one" in r.output
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(DOC)
    r = run(
        "index", docs, "--model", tiny_model_dir, "--index", tmp_path / "ix", "--situated", "64"
    )
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", "--index", tmp_path / "ix", "--json").stdout)
    assert info["embedder"]["window"] == 64
    r = run("index", docs, "--index", tmp_path / "ix")  # a re-sync keeps it, nothing to redo
    assert r.exit_code == 0, r.output
