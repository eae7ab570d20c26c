"""Which settings an index is built with: given options, then the index's, then the preset."""

from __future__ import annotations

from dataclasses import asdict

from retriever.embed.config import RUNTIME, EmbedderConfig, index_config, retrieval_preset
from retriever.embed.models import DEFAULT_MODEL, NAMED_MODELS

PRESET = dict(NAMED_MODELS[DEFAULT_MODEL].retrieval)


def test_default_model_ships_a_preset_that_differs_from_the_sts_defaults():
    assert PRESET, "the default model should carry retrieval settings"
    defaults = asdict(EmbedderConfig())
    assert any(defaults[k] != v for k, v in PRESET.items())
    EmbedderConfig(**PRESET)  # every key is a real setting


def test_new_index_takes_the_preset_and_given_options_win():
    config = index_config({})
    for k, v in PRESET.items():
        assert getattr(config, k) == v
    config = index_config({"pooling": "mean", "batch_size": 3})
    assert config.pooling == "mean" and config.batch_size == 3
    assert config.prompt == PRESET["prompt"]


def test_own_prompt_drops_the_presets_query_prompt():
    config = index_config({"prompt": "ke"})
    assert config.prompt == "ke" and config.query_prompt is None
    config = index_config({"template": 'About <PST> "TEXT":"'})
    assert config.query_prompt is None
    config = index_config({"prompt": "ke", "query_prompt": "topic-query"})
    assert config.query_prompt == "topic-query"


def test_model_without_a_preset_gets_the_defaults():
    assert retrieval_preset("smollm2-135m") == {} and retrieval_preset("/some/dir") == {}
    config = index_config({"model": "/some/dir"}, {"max_length": 128})
    assert config == EmbedderConfig(model="/some/dir", max_length=128)


def test_existing_index_settings_beat_the_preset_but_not_runtime_options():
    stored = asdict(EmbedderConfig(pooling="mean", tp_exit=4, batch_size=64, device="cuda"))
    config = index_config({}, {"batch_size": 8, "device": "cpu", "dtype": "auto"}, stored)
    assert config.pooling == "mean" and config.tp_exit == 4 and config.prompt == "prompteol"
    assert config.query_prompt is None  # the index had none; the preset does not add one
    assert (config.batch_size, config.device) == (8, "cpu")
    assert set(RUNTIME) == {"batch_size", "device", "dtype"}
    # A given option still wins (and a mismatch is then the store's to refuse).
    assert index_config({"pooling": "last"}, None, stored).pooling == "last"


def test_for_retrieval_is_the_preset_with_overrides():
    assert EmbedderConfig.for_retrieval() == index_config({})
    assert EmbedderConfig.for_retrieval(pooling="last").pooling == "last"


def test_the_preset_has_a_measured_hybrid_default():
    from retriever.embed.config import FALLBACK_HYBRID, hybrid_default

    for tp in (True, False):
        for strategy in ("late", "tp"):  # the default, and the default before it
            settings = asdict(EmbedderConfig.for_strategy(strategy, tp=tp))
            assert hybrid_default(settings) != FALLBACK_HYBRID, (strategy, tp)


# The default model's preset before late chunking, as indexes built then record it.
OLD_PRESET = {
    "model": "gemma3-270m",
    "prompt": "promptreps-passage",
    "query_prompt": "promptreps-query",
    "pooling": "last+mean",
    "tp": True,
    "tp_start": 2,
    "tp_exit": 8,
    "output_layer": None,
    "window": 0,
    "max_length": 512,
}


def test_the_default_is_late_chunking_and_the_tp_preset_is_the_old_default():
    assert EmbedderConfig.for_retrieval() == EmbedderConfig.for_strategy("late")
    assert index_config({}).window == 1024 and index_config({}).tp is False
    tp = asdict(EmbedderConfig.for_strategy("tp"))
    assert {k: tp[k] for k in OLD_PRESET} == OLD_PRESET


def test_an_index_built_with_the_old_default_keeps_its_settings_and_hybrid():
    from retriever.embed.config import hybrid_default

    stored = asdict(EmbedderConfig(**{**OLD_PRESET, "batch_size": 16}))
    config = index_config({}, {"batch_size": 8, "device": "cpu", "dtype": "auto"}, stored)
    assert {k: getattr(config, k) for k in OLD_PRESET} == OLD_PRESET
    assert hybrid_default(asdict(config)) == ("score", 0.3)  # what was measured for it
