"""PromptReps-style sparse vectors: logits from the dense vector, word weights, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retriever import ConfigError, EmbedderConfig, TPEmbedder
from retriever.embed.sparse import SparseEncoder, sparse_scores, words_of


@pytest.fixture
def vanilla(tiny_models, tokenizer):
    return TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp=False, preprocess=False))


def test_logits_from_the_dense_vector_are_the_models_next_token_logits(vanilla, tokenizer):
    text = "the cat sat on the mat"
    h = vanilla.encode([text], normalize_embeddings=False)
    enc = vanilla.tokenize(text)
    with torch.inference_mode():
        want = vanilla.model(torch.tensor([enc.ids])).logits[0, -1].numpy()
    np.testing.assert_allclose(SparseEncoder(vanilla).logits(h)[0], want, atol=1e-4, rtol=1e-4)
    # Stored unit vectors come back to the same logits with the right scale.
    norm = float(np.linalg.norm(h))
    unit = SparseEncoder(vanilla, scale=norm).logits(h / norm)[0]
    np.testing.assert_allclose(unit, want, atol=1e-3, rtol=1e-3)


def test_word_weights_are_log1p_relu_of_the_best_spelling(vanilla, tokenizer):
    enc = SparseEncoder(vanilla)
    text = "Cats chase the red dots, cats!"
    h = vanilla.encode([text], normalize_embeddings=False)
    row = enc.logits(h)[0]
    bag = enc.encode([text], h)[0]
    assert set(bag) <= set(words_of(text)) == {"cats", "chase", "the", "red", "dots"}
    for w in words_of(text):
        spellings = (w, " " + w, w.capitalize(), " " + w.capitalize())
        firsts = {tokenizer(s, add_special_tokens=False)["input_ids"][0] for s in spellings}
        best = max(row[i] for i in firsts)
        if best > 0:
            assert bag[w] == pytest.approx(np.log1p(best), rel=1e-5)
        else:
            assert w not in bag
    expanded = enc.encode([text], h, expand=3)[0]
    extra = set(expanded) - set(bag)
    assert len(extra) <= 3 and not extra & set(words_of(text))


def test_sparse_scores_are_dot_products():
    q = [{"cat": 2.0, "dog": 1.0}, {"sea": 1.0}]
    d = [{"cat": 1.0}, {"dog": 3.0, "sea": 0.5}, {"tree": 4.0}]
    np.testing.assert_allclose(sparse_scores(q, d), [[2.0, 3.0, 0.0], [0.0, 0.5, 0.0]])


def test_only_the_final_layers_last_token_has_logits(tiny_models, tokenizer):
    early = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp_exit=2, output_layer=2))
    with pytest.raises(ConfigError, match="final layer"):
        SparseEncoder(early)
    mean = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp_exit=2, pooling="mean"))
    with pytest.raises(ConfigError, match="pooling"):
        SparseEncoder(mean)
