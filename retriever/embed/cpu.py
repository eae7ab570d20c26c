"""Which float type ``dtype="auto"`` uses on a CPU: bfloat16 where the CPU computes it natively
*and* it measures faster here, float32 everywhere else.

CPUs differ (AVX2 only, AVX512-VNNI, AVX512-BF16, AMX), so nothing is assumed:

1. the CPU's flags must show native bf16 arithmetic (``avx512_bf16`` or ``amx_bf16``);
   without it bf16 is emulated and slower than fp32;
2. a short matmul of the shape a small LLM layer has (``[256, 640] @ [640, 2048]``) is timed in
   both types, best of a few rounds, once per process (~0.1 s); bf16 is chosen only if it is at
   least :data:`MIN_SPEEDUP` times faster.

Vectors from bf16 and fp32 mean the same thing (the fingerprint is dtype-free), so indexes stay
interchangeable; bf16 rounds them (measured cosine to fp32 in ``benchmarks/cpu_dtype.py``).

``dtype="int8"`` is an option, not an ``auto`` choice: the decoder layers' linear layers are
quantised dynamically (int8 weights per output channel, activations quantised per batch), the
embeddings and norms stay fp32. It uses ``torch.ao.quantization.quantize_dynamic``, which torch
marks deprecated in favour of torchao (not a dependency here); its kernels use VNNI where the CPU
has it. How far its vectors move is measured in ``benchmarks/cpu_dtype.py``.
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_SPEEDUP = 1.2


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def has_native_bf16(flags: set[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def matmul_seconds(dtype: torch.dtype, rounds: int = 5) -> float:
    """Best time of a layer-shaped matmul in ``dtype`` (inference mode, this thread count)."""
    a = torch.randn(256, 640).to(dtype)
    b = torch.randn(640, 2048).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        a @ b  # warm-up: kernels chosen, caches filled
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(4):
                a @ b
            best = min(best, time.perf_counter() - t)
    return best


def choose_cpu_dtype(flags: set[str] | None = None, timer=matmul_seconds) -> torch.dtype:
    """bfloat16 if the CPU has native bf16 and it measures :data:`MIN_SPEEDUP` x faster here,
    else float32."""
    if not has_native_bf16(flags):
        return torch.float32
    fp32, bf16 = timer(torch.float32), timer(torch.bfloat16)
    return torch.bfloat16 if fp32 >= MIN_SPEEDUP * bf16 else torch.float32


@functools.cache
def auto_cpu_dtype() -> torch.dtype:
    """:func:`choose_cpu_dtype` for this machine, measured once per process."""
    return choose_cpu_dtype()


def quantize_int8(layers: torch.nn.Module) -> torch.nn.Module:
    """Quantise every ``nn.Linear`` inside ``layers`` to dynamic int8, in place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao -> torchao, see above
        warnings.filterwarnings(
            "ignore", message=".*quantized tensor creation", category=UserWarning
        )
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(
            layers,
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            inplace=True,
        )
