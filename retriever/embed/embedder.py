"""The TP embedder: a config dataclass and an ``encode()`` in sentence-transformers' style.

``TPEmbedder.encode(str)`` returns a 1-D float32 array, ``encode(list)`` a 2-D one, in the input
order (texts are batched longest-first and put back). With ``prompt="metaeol"`` a text is
embedded under each of the method's templates and the vectors are averaged.

The fingerprint is a sha256 over everything that changes a vector's meaning: model identity,
templates, pre-processing, TP range, output layer, pooling, max length, normalisation, the <PST>
vector and the dimension. Device, dtype and batch size are left out: they change rounding, not
meaning. Indexes store the fingerprint and refuse vectors from a different one.

The <PST> vector derived from the weights enters the fingerprint by its definition, not its bytes:
its bytes follow the dtype (bf16 rounds both the embedding rows and Gemma's sqrt(hidden) scale), so
hashing them made an index built on a GPU in bf16 unreadable on a CPU in fp32 (found on an H100).
Fingerprints from before that change stay accepted (``previous_fingerprints``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace

import numpy as np
import torch

from ..errors import ConfigError, EmptyInputError
from .backbone import POOLERS, Backbone
from .batching import Encoded, PromptTokenizer, make_batches
from .config import EmbedderConfig
from .cpu import auto_cpu_dtype, quantize_int8
from .models import NamedModel, derived_cache_file, load, resolve
from .pooling import COMBINED, _normalize, combine_poolings
from .prompts import METHODS, method_templates, parse_template, preprocess
from .situated import encode_chunks, margin_for

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
POOLINGS = (*POOLERS, *COMBINED)
# ``dtype="int8"`` is refused when these move further than this from their fp32 vectors.
INT8_CANARY = (
    "A man is playing a guitar.",
    "The central bank raised interest rates again.",
    "Token prepending lets earlier tokens see the whole sentence.",
)
INT8_MIN_COSINE = 0.98
# Hierarchical TP's cap on block slots: each is one more token in every TP layer's attention.
HTP_MAX_BLOCKS = 64


def _defaults(num_layers: int, named: NamedModel | None) -> tuple[int, int, int]:
    if named is not None:
        return named.tp_start, named.tp_exit, named.output_layer
    # Untuned model: the paper's start, TP over the first quarter of the stack, the final layer.
    # `tpr tune` finds better values for a given model.
    return 1, max(2, num_layers // 4), num_layers


def _layer(given: int | None, default: int, num_layers: int) -> int:
    """An output layer as a ``hidden_states`` index: -1 is the last layer, -2 the one before."""
    if given is None:
        return default
    return num_layers + 1 + given if given < 0 else given


def _resolve_device(device: str, dtype: str) -> tuple[str, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        if device.startswith("cuda"):
            return device, torch.bfloat16
        return device, auto_cpu_dtype() if device == "cpu" else torch.float32
    if dtype == "int8":  # fp32 weights, then the linear layers quantised (load)
        if device != "cpu":
            raise ConfigError(
                "dtype int8 is CPU-only (dynamic quantisation); use bfloat16 on a GPU"
            )
        return device, torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose auto, int8, {', '.join(DTYPES)}")
    return device, DTYPES[dtype]


def pst_from_weights(model, source) -> torch.Tensor:
    """:meth:`Backbone.mean_input_embedding`, cached beside a converted GGUF's fp32 weights.

    Summing the default model's 262k-row embedding matrix is ~1.5 s of every start, on the
    critical path of a load, so the float64 vector is stored once as .npy (no pickle) in the
    conversion entry (:func:`~retriever.embed.models.derived_cache_file`). Other sources and dtypes
    are computed each time.
    """
    backbone = Backbone(model)
    path = None
    if backbone.embed.weight.dtype == torch.float32:
        path = derived_cache_file(source, "pst")
    if path is not None and path.exists():
        try:
            cached = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            cached = None  # damaged: computed and written again below
        if cached is not None and cached.shape == (backbone.hidden_size,):
            return torch.from_numpy(cached.astype(np.float64)).to(backbone.device)
    pst = backbone.mean_input_embedding()
    if path is not None:
        tmp = path.with_suffix(".tmp.npy")
        with contextlib.suppress(OSError):  # a read-only cache only costs the time
            np.save(tmp, pst.cpu().numpy(), allow_pickle=False)
            tmp.replace(path)
    return pst


class TPEmbedder:
    """Token Prepending sentence embeddings from a decoder-only LM.

    Use :meth:`load` for a model spec, or the constructor with an already loaded model.

    Args:
        model: a transformers causal LM (put in eval mode here).
        tokenizer: its fast tokenizer.
        config: the settings; layer settings left as None take the model's defaults.
        identity: what identifies the weights, for the fingerprint.
        named: the named model entry whose defaults apply, if any.

    Raises:
        ConfigError, TemplateError, UnsupportedModelError: on invalid settings or models.
    """

    def __init__(
        self,
        model,
        tokenizer,
        config: EmbedderConfig | None = None,
        identity: dict | None = None,
        named: NamedModel | None = None,
        pst_vector: torch.Tensor | None = None,
        pst_from_weights: bool = False,
    ):
        config = config or EmbedderConfig()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._named = named
        self.backbone = Backbone(model)
        n = self.backbone.num_layers
        d_start, d_exit, d_out = _defaults(n, named)
        if named is not None and config.template is None and config.prompt == "prompteol":
            config = replace(config, prompt=named.prompt)
        config = replace(
            config,
            tp_start=d_start if config.tp_start is None else config.tp_start,
            tp_exit=d_exit if config.tp_exit is None else config.tp_exit,
            output_layer=_layer(config.output_layer, d_out, n),
        )
        self.config = config
        self.identity = identity or {
            "class": type(model).__name__,
            "config": model.config.to_dict(),
        }
        self._validate()
        self.templates = [parse_template(t, config.tp) for t in config.templates()]
        for t in config.query_templates():
            parse_template(t, config.tp)  # a bad query template fails here, not at search time
        if tokenizer.pad_token_id is None:
            # GPT-2 style tokenizers have no pad token; padded positions are masked anyway.
            tokenizer.pad_token = tokenizer.eos_token
        self._pad_id = tokenizer.pad_token_id
        # A caller's own <PST> vector is fingerprinted by its bytes; the derived one by name.
        self._pst_custom = pst_vector is not None and not pst_from_weights
        if pst_vector is None and config.tp:
            pst_vector = self.backbone.mean_input_embedding()
        self.pst_vector = pst_vector
        self.fingerprint_data = self._fingerprint_data()
        self.fingerprint = _sha(self.fingerprint_data)
        # What document vectors depend on (the query prompt does not change them): caches of
        # document vectors key on this, so several query prompts share one corpus pass.
        doc_data = {k: v for k, v in self.fingerprint_data.items() if k != "query_templates"}
        self.document_fingerprint = _sha(doc_data)
        # The same settings fingerprinted the old way (the derived <PST> vector by its bytes,
        # as in fp32), so that indexes built before the change are still accepted.
        old = _sha(self._fingerprint_data(pst_bytes=True))
        self.previous_fingerprints = frozenset({old} - {self.fingerprint})

    @classmethod
    def load(cls, config: EmbedderConfig | None = None, **overrides) -> TPEmbedder:
        """Resolve ``config.model`` (named, directory or .gguf), load it and build the embedder.

        Keyword overrides replace config fields: ``TPEmbedder.load(model="gemma3-270m", tp=False)``.
        """
        config = replace(config or EmbedderConfig(), **overrides)
        source = resolve(config.model)
        device, dtype = _resolve_device(config.device, config.dtype)
        model, tokenizer, pst = load(
            source,
            device,
            dtype,
            # The <PST> vector needs only the weights: compute it while the tokenizer loads.
            after_model=(lambda m: pst_from_weights(m, source)) if config.tp else None,
        )
        embedder = cls(
            model,
            tokenizer,
            config,
            identity=source.identity,
            named=source.named,
            pst_vector=pst,
            pst_from_weights=True,
        )
        if config.dtype == "int8":
            embedder._quantize_checked()
        return embedder

    def _quantize_checked(self) -> None:
        """Quantise to int8, then refuse if a few canary texts move too far from fp32.

        Dynamic int8 quantises activations per tensor; models with outlier activations (Gemma 3
        270M: cosine 0.53 to fp32, SciFact nDCG@10 73.8 -> 15.8 in benchmarks/cpu_dtype.py)
        come out as garbage, with no error from torch. This check turns that into one.
        """
        before = self.encode(INT8_CANARY)
        quantize_int8(self.backbone.layers)
        cosine = float(np.min(np.sum(before * self.encode(INT8_CANARY), axis=1)))
        if cosine < INT8_MIN_COSINE:
            raise ConfigError(
                f"dtype int8 changes this model's vectors too much (cosine {cosine:.2f} to "
                f"float32 on a few test sentences, under {INT8_MIN_COSINE}): its activations do "
                "not survive dynamic int8 quantisation; use --dtype bfloat16 or float32"
            )

    def with_config(self, config: EmbedderConfig) -> TPEmbedder:
        """Another embedder over the same loaded weights (no second load): e.g. the same model
        under the echo or HTP settings. Layer settings left as None take the model's defaults."""
        return TPEmbedder(
            self.model,
            self.tokenizer,
            config,
            identity=self.identity,
            named=self._named,
            pst_vector=self.pst_vector,
            pst_from_weights=not self._pst_custom,
        )

    # -- settings ---------------------------------------------------------------------------

    def _validate(self) -> None:
        c, n = self.config, self.backbone.num_layers
        if c.pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {c.pooling!r}; choose {', '.join(POOLINGS)}")
        if not 1 <= c.output_layer <= n:
            raise ConfigError(
                f"output_layer={c.output_layer} is out of range: this model has {n} layers, "
                f"so choose 1..{n} (hidden_states index; {n} = final layer)"
            )
        if c.tp:
            if not 0 <= c.tp_start < c.tp_exit:
                raise ConfigError(
                    f"TP range [{c.tp_start}, {c.tp_exit}) is empty or negative: "
                    "need 0 <= tp_start < tp_exit"
                )
            if c.tp_exit > c.output_layer:
                raise ConfigError(
                    f"tp_exit={c.tp_exit} lies beyond output_layer={c.output_layer}: layers after "
                    "the output layer never run; lower tp_exit or raise output_layer"
                )
        if not 0 <= c.htp <= HTP_MAX_BLOCKS:
            raise ConfigError(
                f"htp={c.htp}: Hierarchical TP takes 0 (off) to {HTP_MAX_BLOCKS} block slots"
            )
        if c.window and (c.window < 16 or c.htp):
            raise ConfigError(
                f"window={c.window}: situated chunks take windows of 16 tokens or more, "
                "without Hierarchical TP (htp=0)"
            )
        if c.htp and not c.tp:
            raise ConfigError("Hierarchical TP (htp) builds on TP: turn TP on or htp off")
        if c.max_length < 8:
            raise ConfigError(f"max_length={c.max_length} is too small for any prompt")
        if c.batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if c.template is None and c.prompt.lower() not in METHODS:
            method_templates(c.prompt)  # raises the TemplateError with the choices

    def _fingerprint_data(self, pst_bytes: bool = False) -> dict:
        c = self.config
        pst: dict = {"pst_vector_sha256": None}
        if self.pst_vector is not None and (self._pst_custom or pst_bytes):
            # float16 rounding of a float64 mean: stable across machines, still weight-specific.
            digest = hashlib.sha256(self.pst_vector.to("cpu", torch.float16).numpy().tobytes())
            pst = {"pst_vector_sha256": digest.hexdigest()}
        elif self.pst_vector is not None:  # the weights' identity above already pins it
            pst = {"pst_vector": "mean input embedding"}
        extra = {}
        if c.query_templates() != c.templates():  # absent when symmetric: old ids stay valid
            extra["query_templates"] = list(c.query_templates())
        if c.htp:  # absent when off, for the same reason
            extra["htp"] = {"max_blocks": c.htp, "split": "sentences v1"}
        if c.window:  # absent when chunks are embedded alone, for the same reason
            extra["window"] = {"tokens": c.window, "margin": margin_for(c.window), "v": 1}
        return {
            **extra,
            "model": self.identity,
            "templates": list(c.templates()),
            "preprocess": c.preprocess,
            "tp": c.tp,
            "tp_range": [c.tp_start, c.tp_exit] if c.tp else None,
            "output_layer": c.output_layer,
            "pooling": c.pooling,
            "max_length": c.max_length,
            "normalize": c.normalize,
            **pst,
            "dimension": self.dimension,
        }

    @property
    def dimension(self) -> int:
        return self.backbone.hidden_size * len(COMBINED.get(self.config.pooling, (None,)))

    def describe(self) -> dict:
        """Settings and fingerprint, JSON-ready (what an index stores)."""
        return {
            "config": asdict(self.config),
            "fingerprint": self.fingerprint,
            "previous_fingerprints": sorted(self.previous_fingerprints),
        }

    # -- encoding ---------------------------------------------------------------------------

    def _texts(self, sentences: Sequence[str]) -> list[str]:
        out = []
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise EmptyInputError(f"input {i} is {type(s).__name__}, not a string")
            if not s.strip():
                raise EmptyInputError(
                    f"input {i} is empty or whitespace only; drop empty texts before embedding"
                )
            out.append(preprocess(s) if self.config.preprocess else s)
        return out

    def encode_grid(
        self,
        sentences: Sequence[str],
        tp_ranges: Iterable[tuple[int, int] | None],
        output_layers: Iterable[int],
        poolings: Sequence[str] | None = None,
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        normalize_embeddings: bool | None = None,
        templates: Sequence[str] | None = None,
    ) -> dict[tuple[tuple[int, int] | None, int, str], np.ndarray]:
        """Embed under several TP ranges, output layers and poolings with few forward passes.

        One forward pass per (TP range, template, batch) yields every requested output layer
        and pooling at once, which is what makes ``tpr tune`` and the evaluations affordable.
        ``None`` in ``tp_ranges`` means vanilla (the prompt without <PST>).

        ``templates`` overrides the config's document templates (queries pass their own).

        Returns:
            ``{(tp_range, output_layer, pooling): [N, H] float32}`` in input order.
        """
        templates = list(templates or self.config.templates())
        texts = self._texts(sentences)
        layers = sorted(set(output_layers))
        wanted = list(poolings or [self.config.pooling])
        for name in wanted:
            if name not in POOLINGS:
                raise ConfigError(f"unknown pooling {name!r}; choose {', '.join(POOLINGS)}")
        # Combined poolings are built from their parts after the passes.
        names = list(dict.fromkeys(p for w in wanted for p in COMBINED.get(w, (w,))))
        poolers = {name: POOLERS[name] for name in names}
        hidden = self.backbone.hidden_size
        bs = batch_size or self.config.batch_size
        normalize = self.config.normalize if normalize_embeddings is None else normalize_embeddings
        ranges = list(tp_ranges)
        results: dict = {}
        total_steps = len(ranges) * len(templates) * (-(-len(texts) // bs))
        bar = _progress(total_steps, show_progress_bar)
        for rng in ranges:
            acc = {
                (layer, name): np.zeros((len(texts), hidden), np.float32)
                for layer in layers
                for name in names
            }
            for tpl_text in templates:
                tpl = parse_template(tpl_text, tp=rng is not None)
                prompter = PromptTokenizer(
                    self.tokenizer, tpl, self.config.max_length, self._pad_id, self.config.htp
                )
                encoded = [prompter.encode(t) for t in texts]
                pst = self._pst_for(rng)
                for idx, batch in make_batches(encoded, bs, self._pad_id):
                    out = self.backbone.run(batch, pst, rng, layers, poolers)
                    for key, value in out.items():
                        acc[key][idx] += value.cpu().numpy()
                    bar.update(1)
            for layer in layers:
                for name in wanted:
                    if name in COMBINED:
                        parts = [acc[(layer, p)] for p in COMBINED[name]]
                        results[(rng, layer, name)] = combine_poolings(parts)
                        continue
                    v = acc[(layer, name)] / len(templates)
                    results[(rng, layer, name)] = _normalize(v) if normalize else v
        bar.close()
        return results

    def tokenize(self, text: str, tp: bool | None = None) -> Encoded:
        """The first template's prompt for ``text`` as token ids (for inspection and tests)."""
        tp = self.config.tp if tp is None else tp
        tpl = parse_template(self.config.templates()[0], tp=tp)
        prompter = PromptTokenizer(
            self.tokenizer, tpl, self.config.max_length, self._pad_id, self.config.htp
        )
        return prompter.encode(self._texts([text])[0])

    def _pst_for(self, rng) -> torch.Tensor | None:
        if rng is None:
            return None
        if self.pst_vector is None:
            self.pst_vector = self.backbone.mean_input_embedding()
        return self.pst_vector

    def encode_query(self, sentences: str | Sequence[str], **kwargs) -> np.ndarray:
        """Embed search queries: :meth:`encode` with the query prompt (if one is set)."""
        return self.encode(sentences, _templates=self.config.query_templates(), **kwargs)

    def encode_document(self, sentences: str | Sequence[str], **kwargs) -> np.ndarray:
        """Embed documents (the same as :meth:`encode`)."""
        return self.encode(sentences, **kwargs)

    def encode_chunks(
        self,
        documents: Sequence[tuple[str, Sequence[tuple[int, int]]]],
        normalize_embeddings: bool | None = None,
    ) -> list[np.ndarray]:
        """Embed each document's chunks inside the document (``window`` > 0), or alone
        (:func:`retriever.embed.situated.encode_chunks`).

        Args:
            documents: (document text, chunk character spans) pairs.

        Returns:
            One [chunks, dimension] array per document, chunks in the given order.
        """
        return encode_chunks(self, documents, normalize_embeddings)

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        normalize_embeddings: bool | None = None,
        _templates: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Embed texts.

        Args:
            sentences: one string (returns shape [H]) or a list (returns [N, H]).
            batch_size: overrides the config's batch size.
            show_progress_bar: a tqdm bar over batches.
            normalize_embeddings: overrides the config's ``normalize``.

        Raises:
            EmptyInputError: for an empty or whitespace-only text.
        """
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        c = self.config
        if c.window and _templates is None:  # each text its own window (no document)
            self._texts(texts)  # checks: strings, none empty; windows keep their offsets
            texts = [t.strip() for t in texts]
            out = np.concatenate(
                self.encode_chunks([(t, [(0, len(t))]) for t in texts], normalize_embeddings)
            )
            return out[0] if single else out
        rng = (c.tp_start, c.tp_exit) if c.tp else None
        out = self.encode_grid(
            texts,
            [rng],
            [c.output_layer],
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            normalize_embeddings=normalize_embeddings,
            templates=_templates,
        )[(rng, c.output_layer, c.pooling)]
        return out[0] if single else out


def _sha(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="batch", desc="embedding")
