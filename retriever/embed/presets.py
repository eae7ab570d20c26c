"""Which embedder settings an index is built with when the user does not say.

The paper's settings (PromptEOL, last token, TP tuned on STS-B) are the ``EmbedderConfig``
defaults, because that is what TP *is*. They are not the best settings for search: on SciFact
*train* a passage/query prompt pair and last+mean pooling measure far better with the small
default model (benchmarks/RESULTS.md). So building an index takes its settings from, in order:

1. the options the user gave;
2. the settings the index already records (re-syncing an index never needs its options
   repeated, and an index built under an older default keeps working);
3. the named model's retrieval preset (:attr:`NamedModel.retrieval`);
4. the ``EmbedderConfig`` defaults.

Runtime settings (batch size, device, dtype) never come from an index: they do not change what
the vectors mean, and another machine may need other values.

A preset's query prompt belongs to its passage prompt: a user who picks their own prompt or
template gets no query prompt unless they pick one too.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .embedder import EmbedderConfig
from .models import DEFAULT_MODEL, NAMED_MODELS

RUNTIME = ("batch_size", "device", "dtype")


def retrieval_preset(model: str) -> dict[str, Any]:
    """The retrieval settings shipped for ``model`` (empty for models without one)."""
    named = NAMED_MODELS.get(model)
    return dict(named.retrieval) if named is not None else {}


def index_config(
    given: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    stored: dict[str, Any] | None = None,
) -> EmbedderConfig:
    """The settings to build or re-sync an index with.

    Args:
        given: settings the user chose explicitly (``EmbedderConfig`` field names).
        defaults: values for the runtime settings and anything else not set otherwise (the
            CLI passes its option defaults); None = the ``EmbedderConfig`` defaults.
        stored: the embedder settings an existing index records, or None for a new index
            (or a rebuild, which takes fresh settings by definition).

    Returns:
        The config. Whether it matches the index is the store's decision (it refuses a
        mismatch with a message naming the differing settings).
    """
    names = {f.name for f in fields(EmbedderConfig)}
    base = {k: v for k, v in (defaults or {}).items() if k in names}
    if stored:
        layer = {k: v for k, v in stored.items() if k in names and k not in RUNTIME}
    else:
        layer = retrieval_preset(given.get("model", base.get("model", DEFAULT_MODEL)))
        if ("prompt" in given or "template" in given) and "query_prompt" not in given:
            layer.pop("query_prompt", None)
            layer.pop("query_template", None)
    return EmbedderConfig(**{**base, **layer, **given})
