"""Hierarchical TP and echo embeddings on tiny random models: where the slots go, what they
receive in each TP layer, and that batching changes nothing.

test_tp_mechanics' hand-written layer loop (:func:`reference`) overwrites every slot between
layers explicitly; the hook-based engine must reproduce it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from retriever import EmbedderConfig, TPEmbedder
from retriever.embed.prompts import METHODS
from retriever.errors import ConfigError

from ..conftest import ARCHS, LAYERS
from ..embed.test_tp_mechanics import assert_batch_equals_single, reference

THREE = "A man is playing a guitar. A woman is slicing an onion. The cat sat on the mat."


def _embedder(model, tokenizer, **kw):
    kw.setdefault("preprocess", False)
    kw.setdefault("normalize", False)
    return TPEmbedder(model, tokenizer, EmbedderConfig(**kw))


def test_one_slot_per_sentence_each_fed_by_its_last_token(tiny_models, tokenizer):
    emb = _embedder(tiny_models("llama"), tokenizer, htp=8, prompt="htp-passage")
    enc = emb.tokenize(THREE)
    assert len(enc.slots) == 3
    # The global slot first, then the block slots, together, before the text.
    assert [s for s, _ in enc.slots] == [enc.pst + 1, enc.pst + 2, enc.pst + 3]
    assert enc.text_start == enc.pst + 4
    ends = [tokenizer.decode(enc.ids[enc.text_start : src + 1]) for _, src in enc.slots]
    assert ends[0].strip() == "A man is playing a guitar."
    assert ends[1].strip().endswith("slicing an onion.")
    assert enc.slots[-1][1] == enc.text_end - 1  # the last block ends with the text


def test_more_sentences_than_slots_are_grouped(tiny_models, tokenizer):
    text = " ".join(f"Sentence number {i} is here." for i in range(10))
    emb = _embedder(tiny_models("llama"), tokenizer, htp=4, prompt="htp-passage")
    enc = emb.tokenize(text)
    assert len(enc.slots) == 4
    srcs = [src for _, src in enc.slots]
    assert srcs == sorted(set(srcs)) and srcs[-1] == enc.text_end - 1


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_htp_matches_manual_layer_loop(arch, pooling, tiny_models, tokenizer):
    model = tiny_models(arch)
    emb = _embedder(
        model, tokenizer, htp=8, tp_start=1, tp_exit=4, output_layer=LAYERS, pooling=pooling
    )
    enc = emb.tokenize(THREE)
    slots = [(enc.pst, len(enc.ids) - 1), *enc.slots]

    def pool(h):
        return h[-1] if pooling == "last" else h[enc.text_start : enc.text_end].mean(0)

    ref = reference(model, enc.ids, slots, emb.pst_vector, (1, 4), LAYERS, pool)
    np.testing.assert_allclose(emb.encode(THREE), ref, atol=1e-5, rtol=1e-5)
    # And the block slots matter: plain TP on the same prompt gives another vector.
    plain = reference(model, enc.ids, slots[:1], emb.pst_vector, (1, 4), LAYERS, pool)
    assert not np.allclose(plain, ref, atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gpt2", "qwen2"])
@pytest.mark.parametrize("kind", ["htp", "echo"])
def test_batch_equals_single(arch, kind, tiny_models, tokenizer):
    model = tiny_models(arch)
    kw = {"htp": 8, "prompt": "htp-passage"} if kind == "htp" else {"prompt": "echo-passage"}
    emb = _embedder(model, tokenizer, pooling="mean", tp_start=1, tp_exit=3, **kw)
    texts = ["Short.", THREE, "The cat sat. It slept.", "One more sentence without a stop"]
    assert_batch_equals_single(emb, texts, (arch, kind))


def test_echo_pools_the_second_copy(tiny_models, tokenizer):
    emb = _embedder(tiny_models("llama"), tokenizer, prompt="echo-passage", pooling="mean")
    enc = emb.tokenize(THREE)
    ids = enc.ids
    second = tokenizer.decode(ids[enc.text_start : enc.text_end])
    assert second.strip() == THREE
    # The first copy comes before it, after the <PST> slot.
    assert tokenizer.decode(ids[enc.pst + 1 : enc.text_start]).count("guitar") == 1
    # Vanilla echo: the same, with no slot.
    plain = emb.tokenize(THREE, tp=False)
    assert plain.pst is None and tokenizer.decode(plain.ids).count("guitar") == 2


def test_echo_truncation_cuts_both_copies_alike(tiny_models, tokenizer):
    long = " ".join(["The cat sat on the mat while the dog slept by the door."] * 20)
    emb = _embedder(tiny_models("llama"), tokenizer, prompt="echo-passage", max_length=96)
    enc = emb.tokenize(long)
    assert len(enc.ids) <= 96
    text = tokenizer.decode(enc.ids)
    second = tokenizer.decode(enc.ids[enc.text_start : enc.text_end]).strip()
    assert text.count(second) == 2 and len(second) > 40


def test_htp_and_echo_change_the_fingerprint_and_htp_needs_tp(tiny_models, tokenizer):
    model = tiny_models("llama")
    base = _embedder(model, tokenizer)
    htp = _embedder(model, tokenizer, htp=8)
    echo = _embedder(model, tokenizer, prompt="echo-passage")
    assert len({base.fingerprint, htp.fingerprint, echo.fingerprint}) == 3
    assert "htp" not in base.fingerprint_data  # old fingerprints stay what they were
    with pytest.raises(ConfigError, match="builds on TP"):
        _embedder(model, tokenizer, htp=8, tp=False)
    with pytest.raises(ConfigError, match="block slots"):
        _embedder(model, tokenizer, htp=-1)


def test_htp_prompts_are_the_papers():
    assert METHODS["htp-passage"] == ("<PST> TEXT",)
    assert METHODS["htp-query"][0].startswith("Retrieve relevant documents: <PST>")


def _cli(*args):
    from click.testing import CliRunner

    from retriever.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_htp_and_echo_fill_their_settings(tiny_model_dir):
    model = ["--model", tiny_model_dir, "--tp-exit", "3", "--json"]
    plain = json.loads(_cli("embed", THREE, *model).stdout)
    r = _cli("embed", THREE, *model, "--htp")
    assert r.exit_code == 0, r.output
    htp = json.loads(r.stdout)
    assert htp["config"]["htp"] == 16 and htp["config"]["prompt"] == "htp-passage"
    assert htp["config"]["pooling"] == "mean" and htp["config"]["tp_exit"] == 3  # given wins
    assert htp["config"]["output_layer"] == LAYERS - 1  # -2 resolved
    r = _cli("embed", THREE, *model, "--htp", "4", "--pooling", "last")
    assert json.loads(r.stdout)["config"]["htp"] == 4
    assert json.loads(r.stdout)["config"]["pooling"] == "last"
    echo = json.loads(_cli("embed", THREE, *model, "--echo").stdout)
    assert echo["config"]["prompt"] == "echo-passage" and echo["config"]["tp"] is False
    assert echo["config"]["output_layer"] == LAYERS - 2 and echo["config"]["pooling"] == "mean"
    prints = {plain["fingerprint"], htp["fingerprint"], echo["fingerprint"]}
    assert len(prints) == 3
    r = _cli("embed", THREE, *model, "--echo", "--htp")
    assert r.exit_code != 0 and "choose one" in r.output


def test_an_htp_index_records_and_keeps_its_strategy(tmp_path, tiny_model_dir):
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.txt").write_text(THREE)
    model = ["--model", tiny_model_dir, "--tp-exit", "3", "--index", idx]
    r = _cli("index", docs, *model, "--htp", "4")
    assert r.exit_code == 0, r.output
    info = json.loads(_cli("info", "--index", idx, "--json").stdout)
    assert info["embedder"]["htp"] == 4 and info["embedder"]["prompt"] == "htp-passage"
    (docs / "b.txt").write_text("Another file. It has two sentences.")
    r = _cli("index", docs, "--index", idx)  # a re-sync needs no options repeated
    assert r.exit_code == 0, r.output
    r = _cli("index", docs, *model, "--htp", "8")
    assert r.exit_code != 0 and "htp: 4 -> 8" in r.output
    r = _cli("search", "guitar", "--index", idx, "--mode", "dense", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["results"], r.output


def test_the_echo_preset_has_its_measured_hybrid_weight():
    from dataclasses import asdict

    from retriever.embed.config import EmbedderConfig, hybrid_default

    echo = EmbedderConfig.for_strategy("echo")
    assert (echo.prompt, echo.query_prompt, echo.tp, echo.pooling) == (
        "echo-passage",
        "echo-query",
        False,
        "mean",
    )
    assert hybrid_default(asdict(echo)) == ("score", 0.7)
    assert hybrid_default(asdict(EmbedderConfig.for_strategy("tp"))) == ("score", 0.3)
    for strategy in ("htp", "echo"):  # each chunk alone, whatever the default model's preset
        assert EmbedderConfig.for_strategy(strategy).window == 0
    late = EmbedderConfig.for_strategy("late")
    assert (late.prompt, late.window, late.output_layer) == ("late-passage", 1024, -6)
    assert hybrid_default(asdict(late)) == ("score", 0.7)  # its own entry, not the fallback


def test_with_config_shares_the_weights_and_fingerprints_like_a_fresh_load(tiny_models, tokenizer):
    model = tiny_models("llama")
    base = _embedder(model, tokenizer)
    echo_config = EmbedderConfig(prompt="echo-passage", preprocess=False, normalize=False)
    echo = base.with_config(echo_config)
    assert echo.model is base.model and echo.config.prompt == "echo-passage"
    fresh = TPEmbedder(model, tokenizer, echo_config)
    assert echo.fingerprint == fresh.fingerprint
    np.testing.assert_allclose(echo.encode(THREE), fresh.encode(THREE), atol=1e-6)
