"""dtype="auto" on a CPU (issue 19, part 2): bf16 only where the CPU has native bf16 and it
measures faster; fp32 otherwise; and bf16 vectors stay close to fp32's."""

from __future__ import annotations

import numpy as np
import torch

from retriever import EmbedderConfig, TPEmbedder
from retriever.embed import cpu


def fake_timer(fp32: float, bf16: float):
    return lambda dtype: fp32 if dtype == torch.float32 else bf16


def test_bf16_needs_native_support_and_a_measured_win():
    fast = fake_timer(fp32=2.0, bf16=1.0)
    assert cpu.choose_cpu_dtype({"avx2", "avx512f"}, fast) == torch.float32  # emulated bf16
    assert cpu.choose_cpu_dtype({"avx512_bf16"}, fast) == torch.bfloat16
    assert cpu.choose_cpu_dtype({"amx_bf16", "amx_tile"}, fast) == torch.bfloat16
    slow = fake_timer(fp32=1.1, bf16=1.0)  # native, but not 1.2x faster here
    assert cpu.choose_cpu_dtype({"avx512_bf16"}, slow) == torch.float32


def test_auto_uses_the_choice_on_cpu_and_fp32_is_still_available(monkeypatch):
    from retriever.embed.embedder import _resolve_device

    monkeypatch.setattr("retriever.embed.embedder.auto_cpu_dtype", lambda: torch.bfloat16)
    assert _resolve_device("cpu", "auto") == ("cpu", torch.bfloat16)
    assert _resolve_device("cpu", "float32") == ("cpu", torch.float32)
    monkeypatch.setattr("retriever.embed.embedder.auto_cpu_dtype", lambda: torch.float32)
    assert _resolve_device("cpu", "auto") == ("cpu", torch.float32)


def test_the_matmul_probe_times_both_types():
    assert cpu.matmul_seconds(torch.float32, rounds=1) > 0
    assert cpu.matmul_seconds(torch.bfloat16, rounds=1) > 0


def test_bf16_vectors_stay_close_to_fp32_and_share_the_fingerprint(tiny_model_dir):
    texts = ["The cat sat on the mat.", "Retrieval needs good embeddings.", "A man plays guitar."]
    base = EmbedderConfig(model=str(tiny_model_dir), tp_exit=3, device="cpu")
    fp32 = TPEmbedder.load(base.__class__(**{**base.__dict__, "dtype": "float32"}))
    bf16 = TPEmbedder.load(base.__class__(**{**base.__dict__, "dtype": "bfloat16"}))
    a, b = fp32.encode(texts), bf16.encode(texts)
    cos = np.sum(a * b, axis=1)  # both L2-normalised
    assert cos.min() > 0.99, cos
    assert fp32.fingerprint == bf16.fingerprint


def test_int8_quantises_the_decoder_linears_and_stays_close(tiny_model_dir):
    from dataclasses import replace

    texts = ["The cat sat on the mat.", "Retrieval needs good embeddings.", "A man plays guitar."]
    base = EmbedderConfig(model=str(tiny_model_dir), tp_exit=3, device="cpu", dtype="float32")
    fp32 = TPEmbedder.load(base)
    int8 = TPEmbedder.load(replace(base, dtype="int8"))
    linears = [m for m in int8.backbone.layers.modules() if isinstance(m, torch.nn.Linear)]
    quantised = [
        m for m in int8.backbone.layers.modules() if "quantized.dynamic" in type(m).__module__
    ]
    assert quantised and not linears
    assert int8.backbone.embed.weight.dtype == torch.float32  # embeddings stay fp32
    a, b = fp32.encode(texts), int8.encode(texts)
    cos = np.sum(a * b, axis=1)
    assert cos.min() > 0.99, cos
    assert not np.array_equal(a, b)  # it did change the arithmetic
    assert int8.fingerprint == fp32.fingerprint


def test_int8_is_cpu_only():
    import pytest

    from retriever.embed.embedder import _resolve_device
    from retriever.errors import ConfigError

    assert _resolve_device("cpu", "int8") == ("cpu", torch.float32)
    with pytest.raises(ConfigError, match="CPU-only"):
        _resolve_device("cuda", "int8")


def test_int8_is_refused_when_it_ruins_the_vectors(tiny_model_dir, monkeypatch):
    import pytest

    from retriever.errors import ConfigError

    def ruin(layers):  # what per-tensor int8 does to a model with outlier activations
        with torch.no_grad():
            for p in layers.parameters():
                p.copy_(torch.randn_like(p))

    monkeypatch.setattr("retriever.embed.embedder.quantize_int8", ruin)
    config = EmbedderConfig(model=str(tiny_model_dir), tp_exit=3, device="cpu", dtype="int8")
    with pytest.raises(ConfigError, match="int8 changes this model's vectors too much"):
        TPEmbedder.load(config)
