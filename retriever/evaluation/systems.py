"""The systems of an evaluation run: ``'gemma3-270m:tp,gemma3-270m:vanilla,minilm'`` parsed,
and every system's vectors for one list of texts (each model loaded once; TP and vanilla from
one call, :meth:`~retriever.embed.embedder.TPEmbedder.encode_grid`).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError


def system_specs(text: str) -> list[tuple[str, str]]:
    """'a:tp,a:vanilla,minilm' -> [(a, tp), (a, vanilla), (minilm, plain)]."""
    out = []
    for part in text.split(","):
        model, _, variant = part.strip().partition(":")
        variant = variant or ("plain" if model == "minilm" else "tp")
        if variant not in ("tp", "vanilla", "plain"):
            raise ConfigError(f"system {part!r}: the variant is tp or vanilla, e.g. gemma3-270m:tp")
        out.append((model, variant))
    return out


def encode_systems(config, specs, sentences, load=None) -> dict:
    """{system label: vectors}; each TP model loads once and gives TP and vanilla in one call.

    Args:
        config: the base ``EmbedderConfig`` (its model is replaced per system).
        specs: (model, variant) pairs from :func:`system_specs`.
        load: loads an embedder from a config (default
            :func:`~retriever.embed.factory.load_embedder`).
    """
    if load is None:
        from ..embed.factory import load_embedder as load
    results = {}
    for model in dict.fromkeys(m for m, _ in specs):
        variants = [v for m, v in specs if m == model]
        embedder = load(replace(config, model=model, tp=True))
        if model == "minilm":
            results["minilm"] = embedder.encode(sentences, show_progress_bar=True)
            continue
        c = embedder.config
        rng = (c.tp_start, c.tp_exit)
        grid = embedder.encode_grid(
            sentences,
            [rng if v == "tp" else None for v in variants],
            [c.output_layer],
            show_progress_bar=True,
        )
        label = (c.template and "custom") or c.prompt
        for v in variants:
            key = (rng if v == "tp" else None, c.output_layer, c.pooling)
            tag = f"TP[{rng[0]},{rng[1]})" if v == "tp" else "vanilla"
            results[f"{model} {label} {tag} L{c.output_layer}"] = grid[key]
    return results
