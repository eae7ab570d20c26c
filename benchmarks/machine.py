"""One line naming the machine and date a benchmark ran on, printed first by every benchmark.

Results are only comparable on the same machine, so each run states its CPU model, core count,
the SIMD flags that decide matmul speed (AVX2, AVX-512, VNNI, AMX), memory and library versions.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def describe() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    mem = ""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        mem = f", {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB"
    versions = [f"Python {sys.version.split()[0]}"]
    for name in ("torch", "transformers", "faiss"):
        mod = sys.modules.get(name)
        if mod is not None:
            versions.append(f"{name} {getattr(mod, '__version__', '?')}")
    have = " ".join(f for f in FLAGS if f in flags) or "none of " + "/".join(FLAGS)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    return f"{today}; {model}, {os.cpu_count()} cores{mem}; flags: {have}; " + ", ".join(versions)


if __name__ == "__main__":
    print(describe())
