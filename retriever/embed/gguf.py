"""GGUF checkpoints, converted once: de-quantised by transformers into a safetensors directory
in the cache (``$TPR_CACHE_DIR``, default ``~/.cache/tp-retriever``), keyed by the GGUF's sha256
and carrying a manifest with the sha256 of the weights it wrote. A later load checks the weights'
size and mtime against the manifest and re-hashes them only when those changed (or when
``verify=True``), so a second load stays fast; a mismatching hash rebuilds the entry.

A conversion's tokenizer is checked on a canary sentence (transformers 5.17 converted Gemma 3's
wrongly, and every vector was then garbage) and read back natively from its tokenizer.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import TokenizerError

CONVERTER_VERSION = 1
# A sentence whose tokenization exposes a GGUF tokenizer converted wrongly: transformers 5.17
# drops Gemma 3's merges and splits "sentence" into "s", "ent", "en", "ce" (27 pieces, not 16).
# Every embedding from such a tokenizer is garbage, and nothing else would notice.
CANARY = 'This sentence : "A man is playing a guitar." means in one word:"'
MAX_PIECES_PER_WORD = 1.6  # any English-trained vocabulary stays well under this on CANARY


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


SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")


def converted_tokenizer(path: Path):
    """The tokenizer of a conversion this tool wrote, read straight from its tokenizer.json.

    ``AutoTokenizer`` rebuilds a model-specific tokenizer class from the JSON in Python (for
    Gemma 3's 262k-entry vocabulary and 515k merges, 3-4 s of a ~10 s start); the tokenizers
    library reads the same file natively in about half that. A conversion's tokenizer.json is
    complete (normalizer, pre-tokenizer, post-processor, added tokens), so ids and offsets come
    out the same (``tests/embed/test_models.py`` checks both); the special tokens come from the
    tokenizer_config.json written beside it. A user's own directory keeps ``AutoTokenizer``,
    since its tokenizer class may do more than the JSON says.
    """
    from transformers import PreTrainedTokenizerFast

    cfg = json.loads((path / "tokenizer_config.json").read_text())
    specials = {k: cfg[k] for k in SPECIAL_TOKENS if isinstance(cfg.get(k), str)}
    return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"), **specials)
