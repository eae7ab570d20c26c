"""The small harness the benchmarks share: the machine line, timing, medians and percentiles,
A/B rounds that alternate, and a result file that records the command that made it.

Speed claims here are ratios measured side by side in one run: the machine is shared and noisy,
so :func:`alternate` runs the contenders in turns, round after round, and both see the same
page cache and the same neighbours.

    from harness import alternate, header, percentiles, save, timed
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

RESULTS = Path(__file__).resolve().parent / "results"


def header() -> str:
    """Print and return the machine line every benchmark starts with."""
    line = f"machine: {describe()}"
    print(line, flush=True)
    return line


def timed(fn: Callable[[], object], rounds: int = 1) -> list[float]:
    """Seconds per call of ``fn``, ``rounds`` times."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def each(fn: Callable[[object], object], items: Iterable) -> list[float]:
    """Seconds per call of ``fn(item)`` for each item (e.g. one query each)."""
    return [timed(lambda item=item: fn(item))[0] for item in items]


def alternate(calls: dict[str, Callable[[], object]], rounds: int = 3) -> dict[str, list[float]]:
    """Seconds per call of each contender, run in turns (a, b, a, b, ...) for ``rounds``."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            out[name] += timed(fn)
    return out


def median(seconds: list[float]) -> float:
    return statistics.median(seconds)


def percentiles(seconds: list[float], qs: tuple[float, ...] = (50, 99)) -> tuple[float, ...]:
    """Percentiles in milliseconds (p50 and p99 by default)."""
    ms = np.asarray(seconds) * 1000
    return tuple(float(np.percentile(ms, q)) for q in qs)


def wins_losses(a, b, eps: float = 1e-9) -> str:
    """``wins/losses/ties`` of per-query scores ``a`` against ``b`` (same queries, same order;
    higher is better)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    w, lo = int((a > b + eps).sum()), int((a < b - eps).sum())
    return f"{w}/{lo}/{len(a) - w - lo}"


def save(name: str, text: str) -> Path:
    """Write ``results/<name>.md``: the command that ran, the machine line, then ``text``."""
    command = "python " + " ".join(
        shlex.quote(a) for a in [f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(f"```bash\n{command}\n```\n\nmachine: {describe()}\n\n{text.strip()}\n")
    return path
