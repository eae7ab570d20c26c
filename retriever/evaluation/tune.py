"""Choose TP settings (range, output layer, prompt) on a dev split.

For each TP range one forward pass over the dev sentences yields every output layer at once
(``TPEmbedder.encode_grid``), so the grid costs one pass per range, not per (range, layer).
Only output layers at or after ``tp_exit`` are valid for a range. Vanilla rows are scored too,
so the gain from TP is visible on the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..embed.embedder import TPEmbedder
from .sts import STSTask, evaluate


@dataclass
class TuneResult:
    """The grid, best first; each row is (prompt, tp_range or None, output_layer, score)."""

    rows: list[tuple[str, tuple[int, int] | None, int, float]]

    @property
    def best(self):
        return max((r for r in self.rows if r[1] is not None), key=lambda r: r[3])

    @property
    def best_vanilla(self):
        return max((r for r in self.rows if r[1] is None), key=lambda r: r[3])

    def as_json(self, model: str, pairs: int) -> dict:
        """The grid and the choice, as ``tpr tune --out`` writes them."""
        p, rng, layer, score = self.best
        return {
            "model": model,
            "pairs": pairs,
            "chosen": {
                "prompt": p,
                "tp_start": rng[0],
                "tp_exit": rng[1],
                "output_layer": layer,
                "score": score,
            },
            "grid": [
                {"prompt": a, "tp_range": b, "output_layer": c, "score": d}
                for a, b, c, d in self.rows
            ],
        }

    def markdown(self, top: int | None = None) -> str:
        rows = sorted(self.rows, key=lambda r: -r[3])[:top]
        lines = ["| prompt | TP range | output layer | dev Spearman |", "|---|---|---:|---:|"]
        for prompt, rng, layer, score in rows:
            r = f"[{rng[0]}, {rng[1]})" if rng else "vanilla"
            lines.append(f"| {prompt} | {r} | {layer} | {score:.2f} |")
        return "\n".join(lines)


def default_ranges(num_layers: int) -> list[tuple[int, int]]:
    """Ranges starting at 0-2 (the paper: starting later than layer 2 hurts), exits up to ~60%."""
    top = max(3, int(num_layers * 0.6))
    return [(s, e) for s in (0, 1, 2) for e in range(s + 1, top + 1)]


def tune(
    embedder: TPEmbedder,
    tasks: Sequence[STSTask],
    ranges: Sequence[tuple[int, int]],
    output_layers: Sequence[int],
    prompt_name: str,
    show_progress_bar: bool = False,
) -> TuneResult:
    """Score vanilla and every (range, output layer) pair on ``tasks`` (average Spearman)."""
    grid: list = [None, *ranges]

    def encode(sentences):
        out = embedder.encode_grid(
            sentences, grid, output_layers, show_progress_bar=show_progress_bar
        )
        # Keys become (range, layer); a layer before tp_exit never sees the full TP range.
        return {
            (rng, layer): v
            for (rng, layer, _pooling), v in out.items()
            if rng is None or rng[1] <= layer
        }

    table = evaluate(tasks, encode)
    rows = [(prompt_name, rng, layer, scores["avg"]) for (rng, layer), scores in table.items()]
    return TuneResult(rows)
