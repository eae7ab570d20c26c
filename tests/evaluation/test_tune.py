"""tpr tune's grid: one pass per TP range must equal separate runs per output layer."""

from __future__ import annotations

import numpy as np

from retriever import EmbedderConfig, TPEmbedder
from retriever.evaluation.sts import STSTask
from retriever.evaluation.tune import default_ranges, tune

TEXTS = ["A man plays a guitar.", "A woman slices an onion.", "The cat sat on the mat."]


def test_grid_equals_separate_encodes(tiny_models, tokenizer):
    model = tiny_models("gemma3")
    grid_emb = TPEmbedder(model, tokenizer, EmbedderConfig(tp_exit=3))
    # One pass per range gives every (layer, pooling); each must equal its own run.
    grid = grid_emb.encode_grid(TEXTS, [None, (1, 3), (0, 2)], [3, 4, 6], ["last", "mean"])
    assert len(grid) == 3 * 3 * 2
    for (rng, layer, pooling), got in grid.items():
        cfg = EmbedderConfig(
            tp=rng is not None,
            output_layer=layer,
            pooling=pooling,
            **({"tp_start": rng[0], "tp_exit": rng[1]} if rng else {}),
        )
        want = TPEmbedder(model, tokenizer, cfg).encode(TEXTS)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=str((rng, layer, pooling)))


def test_tune_scores_vanilla_and_only_valid_layers(tiny_models, tokenizer):
    emb = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp_exit=3))
    task = STSTask("STSB", TEXTS, list(reversed(TEXTS)), np.array([1.0, 5.0, 2.0]))
    result = tune(emb, [task], [(1, 3), (1, 5)], [2, 4, 6], "prompteol")
    keys = {(r[1], r[2]) for r in result.rows}
    assert keys == {(None, 2), (None, 4), (None, 6), ((1, 3), 4), ((1, 3), 6), ((1, 5), 6)}
    assert result.best[1] is not None and result.best_vanilla[1] is None
    assert "vanilla" in result.markdown()


def test_default_ranges_start_early():
    ranges = default_ranges(18)
    assert {s for s, _ in ranges} == {0, 1, 2}
    assert all(s < e <= 10 for s, e in ranges)
