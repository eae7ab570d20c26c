"""TPEmbedder: encode() conventions, errors, truncation, pooling and the fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from retriever import ConfigError, EmbedderConfig, EmptyInputError, TemplateError, TPEmbedder
from retriever.embed.embedder import _sha

from ..conftest import LAYERS


@pytest.fixture(scope="module")
def emb(tiny_models, tokenizer):
    return TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp_start=1, tp_exit=3))


def test_str_gives_1d_and_list_gives_2d_in_input_order(emb):
    texts = ["A long sentence about a cat on a mat, and a dog by the door.", "Short.", "Mid one."]
    one = emb.encode(texts[1])
    many = emb.encode(texts, batch_size=2)
    assert one.shape == (emb.dimension,) and one.dtype == np.float32
    assert many.shape == (3, emb.dimension)
    # Batches are sorted by length inside; results come back in the caller's order.
    for i, t in enumerate(texts):
        np.testing.assert_allclose(many[i], emb.encode(t), atol=1e-5)
    assert emb.encode([]).shape == (0, emb.dimension)


def test_normalization(emb):
    v = emb.encode(["One.", "Two words."])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    raw = emb.encode("One.", normalize_embeddings=False)
    assert abs(np.linalg.norm(raw) - 1.0) > 1e-3
    np.testing.assert_allclose(raw / np.linalg.norm(raw), v[0], atol=1e-5)


@pytest.mark.parametrize("bad", ["", "   \n", None])
def test_empty_input_is_a_clear_error(emb, bad):
    with pytest.raises(EmptyInputError, match="input 1"):
        emb.encode(["fine", bad])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"output_layer": LAYERS + 1}, "out of range"),
        ({"output_layer": 0}, "out of range"),
        ({"tp_start": 1, "tp_exit": 5, "output_layer": 3}, "beyond output_layer"),
        ({"tp_start": 3, "tp_exit": 3}, "empty"),
        ({"pooling": "max"}, "unknown pooling"),
        ({"prompt": "nope"}, "unknown prompt method"),
        ({"dtype": "int4"}, None),
        ({"output_layer": -(LAYERS + 1)}, "out of range"),
    ],
)
def test_bad_settings_are_refused(tiny_models, tokenizer, kw, match):
    if "dtype" in kw:
        from retriever.embed.embedder import _resolve_device

        with pytest.raises(ConfigError, match="unknown dtype"):
            _resolve_device("cpu", kw["dtype"])
        return
    with pytest.raises(ConfigError, match=match):
        TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(**kw))


def test_custom_template_must_fit_tp(tiny_models, tokenizer):
    with pytest.raises(TemplateError, match="<PST>"):
        TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(template='Say "TEXT" now'))
    vanilla = TPEmbedder(
        tiny_models("llama"), tokenizer, EmbedderConfig(template='Say "TEXT" now', tp=False)
    )
    assert vanilla.encode("hello").shape == (vanilla.dimension,)


def test_truncation_cuts_the_text_not_the_prompt(tiny_models, tokenizer):
    e = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(max_length=40, tp_exit=3))
    long_text = "the cat sat on the mat " * 50
    enc = e.tokenize(long_text)
    assert len(enc.ids) <= 40
    tail = tokenizer.decode(enc.ids[enc.text_end :])
    assert tail.endswith('means in one word:"')
    assert e.encode(long_text).shape == (e.dimension,)
    with pytest.raises(ConfigError, match="leaves no room"):
        TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(max_length=8, tp_exit=3)).encode(
            long_text
        )


def test_mean_pooling_differs_from_last_and_uses_text_span(tiny_models, tokenizer):
    cfg = dict(tp_start=1, tp_exit=3, normalize=False)
    last = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(**cfg))
    mean = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(pooling="mean", **cfg))
    enc = mean.tokenize("A man is playing a guitar.")
    span = tokenizer.decode(enc.ids[enc.text_start : enc.text_end])
    assert span.strip() == "A man is playing a guitar."
    assert not np.allclose(last.encode("A cat."), mean.encode("A cat."))


def test_last_plus_mean_is_both_normalised_and_concatenated(tiny_models, tokenizer):
    model = tiny_models("llama")
    texts = ["a cat sat on the mat", "dogs bark"]
    both = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=2, pooling="last+mean"))
    last = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=2)).encode(texts)
    mean = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=2, pooling="mean")).encode(texts)
    v = both.encode(texts)
    assert both.dimension == 2 * last.shape[1] and v.shape == (2, both.dimension)
    np.testing.assert_allclose(v, np.hstack([last, mean]) / np.sqrt(2), atol=1e-6)
    # The cosine of two combined vectors is the mean of the two cosines.
    cos = float(v[0] @ v[1])
    assert cos == pytest.approx((last[0] @ last[1] + mean[0] @ mean[1]) / 2, abs=1e-6)


def test_query_prompt_embeds_queries_with_their_own_template(tiny_models, tokenizer):
    model = tiny_models("llama")
    sym = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=2, prompt="topic-passage"))
    asym = TPEmbedder(
        model,
        tokenizer,
        EmbedderConfig(tp_exit=2, prompt="topic-passage", query_prompt="topic-query"),
    )
    as_query = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=2, prompt="topic-query"))
    text = "what causes rust"
    np.testing.assert_allclose(sym.encode_query(text), sym.encode(text), atol=1e-6)
    np.testing.assert_allclose(asym.encode(text), sym.encode(text), atol=1e-6)
    np.testing.assert_allclose(asym.encode_query(text), as_query.encode(text), atol=1e-6)
    assert asym.encode_query([text, "iron oxide"]).shape == (2, asym.dimension)
    # Symmetric configs keep the fingerprint they always had; a query prompt changes it.
    assert "query_templates" not in sym.fingerprint_data
    assert asym.fingerprint != sym.fingerprint
    with pytest.raises(TemplateError, match="unknown prompt method"):
        TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=2, query_prompt="nope"))


def test_metaeol_averages_its_eight_prompts(tiny_models, tokenizer):
    from retriever.embed.prompts import METHODS

    assert len(METHODS["metaeol"]) == 8
    kw = dict(tp_start=1, tp_exit=3, normalize=False)
    meta = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(prompt="metaeol", **kw))
    singles = [
        TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(template=t, **kw)).encode("Hi.")
        for t in METHODS["metaeol"]
    ]
    np.testing.assert_allclose(meta.encode("Hi."), np.mean(singles, axis=0), atol=1e-5)


def test_fingerprint_tracks_every_meaningful_setting(tiny_models, tokenizer):
    def fp(**kw):
        kw.setdefault("tp_exit", 3)
        return TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(**kw)).fingerprint

    base = fp()
    assert base == fp(batch_size=3)  # batching changes rounding, not meaning
    changed = [
        fp(tp=False),
        fp(tp_start=0),
        fp(tp_exit=4),
        fp(output_layer=5),
        fp(pooling="mean"),
        fp(prompt="cot"),
        fp(normalize=False),
        fp(max_length=64),
        fp(preprocess=False),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    other = TPEmbedder(tiny_models("qwen2"), tokenizer, EmbedderConfig(tp_exit=3)).fingerprint
    assert other != base


_CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from tests.conftest import build_model, make_tokenizer
from retriever import TPEmbedder, EmbedderConfig
tok = make_tokenizer()
e = TPEmbedder(build_model("gemma3", len(tok)), tok, EmbedderConfig(tp_exit=3))
print(json.dumps({{"fp": e.fingerprint, "pst": e.pst_vector.tolist()}}))
"""


def test_pst_vector_and_fingerprint_are_the_same_in_another_process(tokenizer):
    from pathlib import Path

    from ..conftest import build_model

    here = TPEmbedder(build_model("gemma3", len(tokenizer)), tokenizer, EmbedderConfig(tp_exit=3))
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=root)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    ).stdout
    child = json.loads(out.strip().splitlines()[-1])
    assert child["fp"] == here.fingerprint
    np.testing.assert_array_equal(np.array(child["pst"]), here.pst_vector.numpy())


def test_fingerprint_does_not_follow_the_dtype(tokenizer):
    # On an H100 an index built in bf16 (the CUDA default) was refused in fp32: the derived <PST>
    # vector's bytes follow the dtype (Gemma rounds its sqrt(hidden) scale too). bf16 on the CPU
    # shows the same thing without a GPU.
    from ..conftest import build_model

    fp32 = TPEmbedder(build_model("gemma3", len(tokenizer)), tokenizer, EmbedderConfig(tp_exit=3))
    bf16_model = build_model("gemma3", len(tokenizer)).to(torch.bfloat16)
    bf16 = TPEmbedder(bf16_model, tokenizer, EmbedderConfig(tp_exit=3))
    assert not torch.equal(bf16.pst_vector, fp32.pst_vector)
    assert bf16.fingerprint == fp32.fingerprint
    assert fp32.fingerprint_data["pst_vector"] == "mean input embedding"
    # The fp32 fingerprint of earlier versions (the vector's bytes) is still recognised.
    (old,) = fp32.previous_fingerprints
    assert old == _sha(fp32._fingerprint_data(pst_bytes=True)) and old != fp32.fingerprint
    assert fp32.describe()["previous_fingerprints"] == [old]


def test_a_callers_own_pst_vector_is_fingerprinted_by_its_bytes(tiny_models, tokenizer):
    model = tiny_models("llama")
    derived = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=3))
    own = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=3), pst_vector=derived.pst_vector)
    other = TPEmbedder(
        model, tokenizer, EmbedderConfig(tp_exit=3), pst_vector=derived.pst_vector + 1.0
    )
    assert "pst_vector_sha256" in own.fingerprint_data
    assert len({derived.fingerprint, own.fingerprint, other.fingerprint}) == 3
    # Without TP there is no <PST> vector, and the fingerprint is what it always was.
    vanilla = TPEmbedder(model, tokenizer, EmbedderConfig(tp=False))
    assert vanilla.fingerprint_data["pst_vector_sha256"] is None
    assert vanilla.previous_fingerprints == frozenset()


def test_encode_grid_options_are_keyword_only(tiny_models, tokenizer):
    """A positional ``True`` once landed in ``batch_size`` (batch size 1, --batch-size ignored)."""
    emb = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp_exit=3))
    with pytest.raises(TypeError):
        emb.encode_grid(["a cat"], [None], [4], ["last"], True)
    out = emb.encode_grid(["a cat"], [None], [4], ["last"], show_progress_bar=False)
    assert out[(None, 4, "last")].shape == (1, emb.dimension)
