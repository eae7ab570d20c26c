"""The engine on a CUDA GPU: fp32 reproduces the CPU reference, bf16 stays close.

Skipped where there is no GPU (CI and the default machine have none); run it on a GPU machine with
``python -m pytest tests/embed/test_cuda.py`` (``-m slow`` adds the real default model). The tiny
models are built on the CPU, so the CPU reference loop of :mod:`tests.test_tp_mechanics` is
the yardstick for the GPU run of the same weights.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from retriever import EmbedderConfig, TPEmbedder
from retriever.embed.embedder import _resolve_device

from ..conftest import ARCHS, LAYERS, build_model
from ..embed.test_tp_mechanics import TEXT, reference_embedding

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TEXTS = [
    "Short.",
    "The cat sat on the mat while the dog slept by the door, and nobody cared at all.",
    TEXT,
]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def _on_gpu(model, dtype=torch.float32):
    return copy.deepcopy(model).to("cuda", dtype)


def _embedder(model, tokenizer, **kw):
    kw.setdefault("preprocess", False)
    kw.setdefault("normalize", False)
    return TPEmbedder(model, tokenizer, EmbedderConfig(**kw))


def test_auto_picks_cuda_and_bf16():
    assert _resolve_device("auto", "auto") == ("cuda", torch.bfloat16)
    assert _resolve_device("cuda", "float32") == ("cuda", torch.float32)


@pytest.mark.parametrize("arch", ARCHS)
def test_fp32_on_gpu_matches_the_cpu_reference_loop(arch, tokenizer):
    model = build_model(arch, len(tokenizer))
    cpu = _embedder(model, tokenizer, tp_start=1, tp_exit=3, output_layer=LAYERS)
    enc = cpu.tokenize(TEXT, tp=True)
    ref = reference_embedding(model, enc.ids, enc.pst, cpu.pst_vector, (1, 3), LAYERS)
    gpu = _embedder(_on_gpu(model), tokenizer, tp_start=1, tp_exit=3, output_layer=LAYERS)
    # The <PST> vector is derived from the weights: the same on either device.
    torch.testing.assert_close(gpu.pst_vector.cpu(), cpu.pst_vector, atol=1e-6, rtol=1e-6)
    assert gpu.fingerprint == cpu.fingerprint
    np.testing.assert_allclose(gpu.encode(TEXT), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3", "gpt2", "mistral"])
def test_padding_invariance_on_gpu(arch, tokenizer):
    model = _on_gpu(build_model(arch, len(tokenizer), sliding_window=12))
    emb = _embedder(model, tokenizer, tp_start=1, tp_exit=3, output_layer=LAYERS)
    batched = emb.encode(TEXTS, batch_size=3)
    alone = np.stack([emb.encode(t) for t in TEXTS])
    assert (_cos(alone, batched) > 0.9999).all(), _cos(alone, batched)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen3"])
def test_bf16_on_gpu_stays_close_to_fp32(arch, tokenizer):
    model = build_model(arch, len(tokenizer))
    fp32 = _embedder(model, tokenizer, tp_start=1, tp_exit=3, output_layer=LAYERS).encode(TEXTS)
    bf16 = _embedder(
        _on_gpu(model, torch.bfloat16), tokenizer, tp_start=1, tp_exit=3, output_layer=LAYERS
    ).encode(TEXTS)
    assert bf16.dtype == np.float32  # vectors leave the engine as float32 whatever the dtype
    assert (_cos(bf16, fp32) > 0.99).all(), _cos(bf16, fp32)


@pytest.mark.slow
def test_default_model_on_gpu_matches_cpu():
    texts = [
        "A man is playing a guitar.",
        "Someone plays an acoustic guitar.",
        "The central bank raised interest rates again.",
    ]
    cpu = TPEmbedder.load(EmbedderConfig(device="cpu")).encode(texts)
    fp32 = TPEmbedder.load(EmbedderConfig(device="cuda", dtype="float32"))
    auto = TPEmbedder.load(EmbedderConfig())  # bf16 on CUDA
    assert auto.model.dtype == torch.bfloat16
    assert fp32.fingerprint == auto.fingerprint  # dtype and device change rounding only
    assert (_cos(fp32.encode(texts), cpu) > 0.9999).all()
    a, b, c = auto.encode(texts)
    assert (_cos(np.stack([a, b, c]), cpu) > 0.99).all()
    assert a @ b > a @ c + 0.1
