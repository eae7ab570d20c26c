"""Embedder settings, and every preset that fills them: one place.

* :class:`EmbedderConfig`, the settings of a TP embedder;
* :func:`index_config`, which settings an index is built with when the user does not say (below);
* :func:`hybrid_default`, the fusion method and dense weight of hybrid search per settings.

The per-model values (TP layers tuned on STS-B, the retrieval preset tuned on SciFact train) are
catalog entries of :mod:`.models`, beside each model's name and package.

Which embedder settings an index is built with when the user does not say:

The paper's settings (PromptEOL, last token, TP tuned on STS-B) are the ``EmbedderConfig``
defaults, because that is what TP *is*. They are not the best settings for search: on SciFact
*train* a passage/query prompt pair and last+mean pooling measured far better with the small
default model, and late chunking (each file read once, each chunk pooled over its own span at
an early layer) better again, at less CPU (benchmarks/RESULTS.md). So building an index takes
its settings from, in order:

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

from dataclasses import dataclass, fields
from typing import Any

from .models import DEFAULT_MODEL, NAMED_MODELS
from .prompts import method_templates

RUNTIME = ("batch_size", "device", "dtype")
MINILM = "minilm"  # the baseline's model name (retriever.embed.minilm): named here, without torch


@dataclass(frozen=True)
class EmbedderConfig:
    """Settings of a TP embedder. ``None`` layer settings take the model's defaults.

    Attributes:
        model: named model (``tpr models``), local HF directory, or .gguf file.
        prompt: prompt method: prompteol, cot, ke or metaeol.
        template: custom template (overrides ``prompt``); contains TEXT, and <PST> before it.
        tp: Token Prepending on (True) or the vanilla prompt (False).
        tp_start: first layer (0-based) before which <PST> is overwritten.
        tp_exit: layer before which TP stops (exclusive); must be <= output_layer.
        output_layer: transformers ``hidden_states`` index to read (1..num_layers; -1 is the
            last layer, -2 the one before, resolved when the model loads).
        pooling: "last" (the paper), "mean" over the sentence's tokens, or "last+mean": both,
            each L2-normalised, concatenated and scaled by 1/sqrt(2) (twice the dimension;
            the cosine of two such vectors is the mean of the two cosines).
        max_length: prompt length cap in tokens; the sentence is truncated to fit.
        batch_size: texts per forward pass.
        device: "auto", "cpu", "cuda", "cuda:1", ...
        dtype: "auto" (bf16 on CUDA; on a CPU bf16 where it is native and measures faster,
            else fp32: :mod:`retriever.embed.cpu`), "float32", "bfloat16", "float16", or
            "int8" (CPU: the decoder's linear layers quantised dynamically).
        normalize: L2-normalise the embeddings.
        preprocess: apply the reference code's sentence clean-up.
        query_prompt / query_template: a different prompt for search queries
            (:meth:`TPEmbedder.encode_query`), e.g. ``prompt="topic-passage",
            query_prompt="topic-query"``. None = queries use the document prompt.
        htp: Hierarchical TP: up to this many sentence-block placeholders besides the global
            <PST> (0 = plain TP). See :mod:`retriever.embed.batching`.
        window: situated chunks: 0 embeds each chunk alone in its own prompt; W > 0 embeds a
            document's chunks inside windows of up to W tokens of it, one pass per window, each
            chunk pooled over its own span (:mod:`retriever.embed.situated`). Queries are
            embedded alone either way.
    """

    model: str = DEFAULT_MODEL
    prompt: str = "prompteol"
    template: str | None = None
    tp: bool = True
    tp_start: int | None = None
    tp_exit: int | None = None
    output_layer: int | None = None
    pooling: str = "last"
    max_length: int = 512
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    normalize: bool = True
    preprocess: bool = True
    query_prompt: str | None = None
    query_template: str | None = None
    htp: int = 0
    window: int = 0

    @classmethod
    def for_retrieval(cls, model: str = DEFAULT_MODEL, **overrides) -> EmbedderConfig:
        """The settings ``tpr index`` uses for ``model``: its retrieval preset (a passage/query
        prompt pair and pooling measured on SciFact train; see :func:`index_config`), then
        ``overrides``. Models without a preset get the defaults."""
        return index_config({"model": model, **overrides})

    @classmethod
    def for_strategy(cls, strategy: str, model: str = DEFAULT_MODEL, **overrides) -> EmbedderConfig:
        """The settings of a strategy (``"htp"`` or ``"echo"``, :data:`STRATEGIES`) for
        ``model``, then ``overrides``."""
        return index_config(with_strategy({"model": model, **overrides}, strategy))

    @property
    def key(self) -> str:
        """The settings as one canonical string: two configs that load the same embedder have
        the same key (a server or the UI shares one loaded model between indexes by it)."""
        import json

        return json.dumps(self.__dict__, sort_keys=True, default=str)

    def templates(self) -> tuple[str, ...]:
        return (self.template,) if self.template else method_templates(self.prompt)

    def query_templates(self) -> tuple[str, ...]:
        if self.query_template:
            return (self.query_template,)
        if self.query_prompt:
            return method_templates(self.query_prompt)
        return self.templates()


# Strategies beyond single-<PST> TP, as the settings each implies unless the user says otherwise
# (``tpr index --htp`` / ``--echo``, ``EmbedderConfig.for_strategy``). HTP's are its paper's
# retrieval configuration (TP before layers 1-6, the layer before the last, mean pooling, bare
# passages and an instruction on queries). Echo's prompts and mean pooling over the second copy
# are its paper's, and its output layer is the one chosen on SciFact *train* for the default model
# (layer 16 of 18, i.e. -3), which also won on SciFact test and nq-utd (benchmarks/RESULTS.md,
# benchmarks/tp_family.py: dense 58.9 vs vanilla 53.3 and TP 51.8 on the SciFact subset).
HTP_BLOCKS = 16
STRATEGIES: dict[str, dict[str, Any]] = {
    "htp": {
        "htp": HTP_BLOCKS,
        "prompt": "htp-passage",
        "query_prompt": "htp-query",
        "tp": True,
        "tp_start": 1,
        "tp_exit": 7,
        "output_layer": -2,
        "pooling": "mean",
        "max_length": 512,
        "window": 0,  # each chunk alone, whatever the model's preset reads
    },
    "echo": {
        "prompt": "echo-passage",
        "query_prompt": "echo-query",
        "tp": False,
        "output_layer": -3,
        "pooling": "mean",
        "max_length": 1024,  # two copies of a 256-token chunk and the prompt, uncut
        "window": 0,
    },
    # Echo's prompts, pooling and layer, read per document window instead of per chunk: every
    # chunk's tokens have seen the whole window (issue 24; benchmarks/situated.py).
    "situated": {
        "prompt": "echo-passage",
        "query_prompt": "echo-query",
        "tp": False,
        "output_layer": -3,
        "pooling": "mean",
        "max_length": 1024,  # queries (and a chunk alone) as under echo
        "window": 1024,
    },
    # Late chunking: each document window read once, each chunk mean-pooled over its own span
    # at an early layer (13 of 18 on the default model, chosen on SciFact train); queries under
    # echo's query prompt at that layer. Half of situated chunks' tokens and 13/18 of the layers
    # (benchmarks/situated_variants.py).
    "late": {
        "prompt": "late-passage",
        "query_prompt": "echo-query",
        "tp": False,
        "output_layer": -6,
        "pooling": "mean",
        "max_length": 1024,
        "window": 1024,
    },
    # The default model's retrieval preset before late chunking (benchmarks/retrieval_sweep.py
    # on SciFact train): each chunk alone under the PromptReps pair, TP over [2, 8), last+mean
    # pooling at the model's own output layer. Indexes built with it keep it (an index records
    # its settings); ``--tp-preset`` builds a new one.
    "tp": {
        "prompt": "promptreps-passage",
        "query_prompt": "promptreps-query",
        "tp": True,
        "tp_start": 2,
        "tp_exit": 8,
        "output_layer": None,
        "pooling": "last+mean",
        "max_length": 512,
        "window": 0,
    },
}


def with_strategy(given: dict[str, Any], strategy: str | None) -> dict[str, Any]:
    """``given`` settings completed by a strategy's (given values win).

    Raises:
        ConfigError: for an unknown strategy name.
    """
    if not strategy:
        return dict(given)
    if strategy not in STRATEGIES:
        from ..errors import ConfigError

        raise ConfigError(f"unknown strategy {strategy!r}; choose {', '.join(STRATEGIES)}")
    layer = dict(STRATEGIES[strategy])
    if ("prompt" in given or "template" in given) and "query_prompt" not in given:
        layer.pop("query_prompt")  # the user's own prompt gets no query prompt of ours
    return {**layer, **given}


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


# Default hybrid: (fusion method, dense weight; BM25 weighs 1) per embedder setting, chosen on
# the full SciFact corpus with the *train* queries and checked on test (benchmarks/RESULTS.md).
# The first entry whose keys all match the index's embedder settings wins. For the small default
# model every positive RRF weight loses to BM25, while score fusion with a small dense weight
# gains a little: BM25's normalised scores dominate and dense only re-orders near-ties.
# The default model's TP preset (``--tp-preset``, the retrieval preset before late chunking),
# written out rather than read from STRATEGIES: an entry records what was measured, and
# tests/index/test_settings.py fails if the strategy drifts from it.
_TP_PRESET = {
    "model": "gemma3-270m",
    "prompt": "promptreps-passage",
    "query_prompt": "promptreps-query",
    "pooling": "last+mean",
}
DEFAULT_HYBRID: tuple[tuple[dict[str, Any], tuple[str, float]], ...] = (
    ({**_TP_PRESET, "tp": True}, ("score", 0.3)),  # train 71.00 vs BM25 70.09; test 69.46 vs 68.74
    ({**_TP_PRESET, "tp": False}, ("score", 0.5)),  # train 71.47; test 69.67
    ({"model": "gemma3-270m", "prompt": "prompteol", "pooling": "last"}, ("score", 0.2)),
    ({"model": "minilm"}, ("score", 0.7)),
    # --echo on the default model: chosen on the SciFact subset's train queries (80.82 vs BM25
    # 78.34); test 80.28 vs 79.68, nq-utd 81.48 vs 79.49 (benchmarks/tp_family.py).
    (
        {"model": "gemma3-270m", "prompt": "echo-passage", "pooling": "mean", "tp": False},
        ("score", 0.7),
    ),
    # --late (the default model's preset since issue 24): chosen on a 500-document SciFact
    # train cut, 200 queries, chunks of 256 (87.94 vs BM25 86.21; benchmarks/situated_hybrid.py).
    # TP on or off alike: a global <PST> slot left its dense side unchanged on train (75.90 vs
    # 75.97, benchmarks/situated_variants.py).
    ({"model": "gemma3-270m", "prompt": "late-passage", "pooling": "mean"}, ("score", 0.7)),
)
# Anything unmeasured: score fusion at dense weight 0.2 beat BM25 alone on train for every one
# of the six systems measured, from the weakest TP variant to MiniLM, while equal-weight RRF lost
# up to 25 points with the weak ones. A model's own measured entry is preferred to this.
FALLBACK_HYBRID = ("score", 0.2)


def hybrid_default(settings: dict[str, Any]) -> tuple[str, float]:
    """(fusion method, dense weight) of the default hybrid for an embedder's settings.

    Args:
        settings: the embedder's config as a dict (what an index stores under ``embedder``).
    """
    for match, value in DEFAULT_HYBRID:
        if all(settings.get(k) == v for k, v in match.items()):
            return value
    return FALLBACK_HYBRID
