"""Embedding as a Ray Data job: chunks in, vectors out, in order, one model load per actor.

:func:`embed_texts` streams texts through ``map_batches`` with a callable class
(:class:`EmbedActor`): Ray creates
``actors`` of them, each loads the model once (with ``gpus`` GPUs each, where there are any) and
embeds batch after batch. The driver reads the vectors back in order (``preserve_order``) and
a caller commits them as they come. ``tpr index FOLDER --ray [ADDRESS]`` goes one step further
(:mod:`retriever.index.ray_index`): its workers also read and chunk their own files, so the
driver never holds the corpus' texts.

Each actor builds the embedder from the driver's resolved settings, so the vectors and the
fingerprint are the in-process ones (tests/index/test_ray.py checks cosine > 0.9999 on a tiny
model).
Without an address Ray starts locally with this machine's cores; with one (``auto``,
``ray://host:10001``) it joins that cluster, whose nodes need tp-retriever and the model
installed (README "Scaling out").
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class RayOptions:
    """How the Ray job runs.

    Attributes:
        address: a Ray cluster (``auto``, ``ray://host:10001``), or None for a local Ray with
            this machine's cores.
        actors: embedding actors (default 1; one per GPU is the usual choice on a cluster).
        gpus: GPUs per actor (0 on a CPU machine; 1, or 0.5 to put two actors on a GPU).
        batch_size: texts per ``map_batches`` call (each actor embeds them in its own
            length-sorted batches of the embedder's batch size).
    """

    address: str | None = None
    actors: int | None = None
    gpus: float = 0.0
    batch_size: int = 64


class EmbedActor:
    """The callable class of ``map_batches``: loads the embedder once, embeds batches."""

    def __init__(self, config: dict, threads: int | None = None):
        import torch

        from .config import EmbedderConfig
        from .factory import load_embedder

        if threads:
            torch.set_num_threads(threads)
        self.embedder = load_embedder(EmbedderConfig(**config))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.encode([str(t) for t in batch["text"]])
        return {"i": batch["i"], "vector": vectors.astype(np.float32, copy=False)}


def start(options: RayOptions) -> None:
    """Connect to the cluster, or start a local Ray with this machine's cores."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray Data: `pip install 'ray[data]'` (or `pip install -e '.[ray]'`)"
        ) from None
    if ray.is_initialized():
        return
    if options.address:
        ray.init(address=options.address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


def cpu_share(options: RayOptions, actors: int) -> tuple[int, float]:
    """(torch threads, Ray CPUs) per actor on the connected cluster."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 1))
    threads = max(1, int(total) // actors)
    # Actors reserve at most 3/4 of the CPUs: Ray Data's own read and split tasks need a
    # slot too, and on a small machine whole-CPU actors would starve them.
    return threads, min(float(threads), 0.75 * total / actors)


def ordered_map(
    items: list[dict], actor, kwargs: dict, options: RayOptions, batch_size: int, batch_format: str
):
    """A Ray Data job over ``items`` with ``options.actors`` instances of the callable class
    ``actor`` (built with ``kwargs`` plus its torch threads); its output batches, in order."""
    import ray

    start(options)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    actors = options.actors or 1
    threads, cpus = cpu_share(options, actors)
    ds = ray.data.from_items(items).map_batches(
        actor,
        fn_constructor_kwargs={**kwargs, "threads": None if options.gpus else threads},
        batch_size=batch_size,
        batch_format=batch_format,
        concurrency=actors,
        num_gpus=options.gpus or None,
        num_cpus=None if options.gpus else cpus,
    )
    return ds.iter_batches(batch_size=None, batch_format=batch_format)


def embed_texts(
    config, texts: Sequence[str], options: RayOptions
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(positions, vectors) batches for ``texts``, in order, from a Ray Data job.

    Args:
        config: the resolved ``EmbedderConfig`` every actor loads.
        texts: the chunks to embed.
        options: where and how wide the job runs.
    """
    items = [{"i": i, "text": t} for i, t in enumerate(texts)]
    kwargs = {"config": asdict(config)}
    ordered = ordered_map(items, EmbedActor, kwargs, options, options.batch_size, "numpy")
    for batch in ordered:
        yield np.asarray(batch["i"]), np.stack(batch["vector"]).astype(np.float32)
