"""Model spec resolution and identity (no downloads, ever)."""

from __future__ import annotations

import pytest
import torch
import transformers

from retriever.embed.gguf import CANARY, MAX_PIECES_PER_WORD
from retriever.embed.models import (
    NAMED_MODELS,
    ModelSource,
    _dir_identity,
    check_tokenizer,
    converted_tokenizer,
    load,
    resolve,
)
from retriever.errors import ModelNotFoundError, TokenizerError


def test_unknown_spec_names_the_accepted_kinds(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"named model .* local Hugging Face directory"):
        resolve("meta-llama/Llama-2-7b-hf")
    with pytest.raises(ModelNotFoundError):
        resolve(str(tmp_path))  # a folder without config.json


def test_local_directory_identity_follows_weights(tiny_model_dir, tmp_path):
    src = resolve(str(tiny_model_dir))
    assert src.path == tiny_model_dir and "dir_sha256" in src.identity
    assert _dir_identity(tiny_model_dir) == src.identity
    # Same files elsewhere -> same identity; one changed weight byte -> a different one.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert _dir_identity(copy) == src.identity
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert _dir_identity(copy) != src.identity


def test_hub_snapshot_identity_is_repo_and_revision(tmp_path, tiny_model_dir):
    import shutil

    snap = tmp_path / "models--org--name" / "snapshots" / "abc123"
    shutil.copytree(tiny_model_dir, snap)
    assert resolve(str(snap)).identity == {"repo": "org/name", "revision": "abc123"}


class FakeTokenizer:
    """Returns fixed ids for any text: exact assertions on :func:`check_tokenizer`."""

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(self.ids)}


def test_named_model_tokenizer_must_give_the_known_ids(tmp_path):
    good = NAMED_MODELS["gemma3-270m"].canary_ids
    check_tokenizer(FakeTokenizer(good), good, tmp_path)  # passes silently
    broken = FakeTokenizer(range(27))  # what transformers 5.17 gives for Gemma 3's GGUF
    with pytest.raises(TokenizerError) as e:
        check_tokenizer(broken, good, tmp_path)
    msg = str(e.value)
    assert "27 tokens for a 13-word check sentence (expected 16" in msg
    assert f"transformers {transformers.__version__}" in msg
    assert f"delete {tmp_path}" in msg and "transformers>=5.23" in msg


def test_other_gguf_tokenizers_are_bounded_by_pieces_per_word():
    words = len(CANARY.split())
    check_tokenizer(FakeTokenizer(range(int(MAX_PIECES_PER_WORD * words))), None, None)
    with pytest.raises(TokenizerError, match="far fewer") as e:
        check_tokenizer(FakeTokenizer(range(2 * words)), None, None)
    assert "delete" not in str(e.value)  # while converting, nothing is cached yet


def test_loading_a_conversion_with_a_character_level_tokenizer_is_refused(tiny_model_dir, tmp_path):
    # A converted folder whose tokenizer lost its merges (one token per character), as a faulty
    # transformers writes it: load() must refuse it instead of embedding garbage.
    import shutil

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path / "converted"
    shutil.copytree(tiny_model_dir, folder)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(
        [CANARY],
        trainers.BpeTrainer(
            vocab_size=len(alphabet) + 3,
            special_tokens=["<pad>", "<bos>", "<eos>"],
            initial_alphabet=alphabet,
        ),
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>").save_pretrained(folder)
    source = ModelSource(folder, {"gguf_sha256": "0" * 64})
    with pytest.raises(TokenizerError, match=f"delete {folder}"):
        load(source, "cpu", torch.float32)
    # The same folder as a plain Hugging Face directory is the user's own tokenizer: loaded.
    _, tokenizer, _ = load(ModelSource(folder, {"dir_sha256": "x"}), "cpu", torch.float32)
    assert len(tokenizer(CANARY, add_special_tokens=False)["input_ids"]) > 2 * 13


def test_pst_vector_is_cached_beside_a_converted_model_only(tiny_models, tmp_path):
    import json

    import numpy as np

    from retriever.embed.backbone import Backbone
    from retriever.embed.embedder import pst_from_weights

    model = tiny_models("llama")
    want = Backbone(model).mean_input_embedding()
    entry = tmp_path / "converted"
    entry.mkdir()
    (entry / "manifest.json").write_text(json.dumps({"weights_sha256": "ab" * 32}))
    converted = ModelSource(entry, {"gguf_sha256": "cd" * 32})
    assert torch.equal(pst_from_weights(model, converted), want)
    (cached,) = entry.glob("pst-*.npy")
    assert cached.name == f"pst-{'ab' * 8}.npy"
    # The second load reads the file: a planted value comes back, so it was not recomputed.
    np.save(cached, np.full(want.shape, 7.0), allow_pickle=False)
    assert torch.equal(pst_from_weights(model, converted), torch.full_like(want, 7.0))
    cached.write_bytes(b"damaged")  # recomputed and rewritten, never an error
    assert torch.equal(pst_from_weights(model, converted), want)
    assert np.array_equal(np.load(cached, allow_pickle=False), want.numpy())
    # A user's own directory is never written to.
    own = tmp_path / "own"
    own.mkdir()
    assert torch.equal(pst_from_weights(model, ModelSource(own, {"sha256": "x"})), want)
    assert list(own.iterdir()) == []


TOKENIZER_TEXTS = [
    'This sentence : <PST> "a" means in one word:"',
    "  spaces,\ttabs\nand newlines  ",
    "émigré naïve café 東京 🙂",
    "<pad> <bos> <eos> are literal here",
    "",
]


def assert_same_tokenizer(a, b) -> None:
    for text in TOKENIZER_TEXTS:
        for special in (True, False):
            x = a(text, add_special_tokens=special, return_offsets_mapping=True)
            y = b(text, add_special_tokens=special, return_offsets_mapping=True)
            assert x["input_ids"] == y["input_ids"], (text, special)
            assert x["offset_mapping"] == y["offset_mapping"], (text, special)
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id"):
        assert getattr(a, attr) == getattr(b, attr), attr
    assert len(a) == len(b) and b.is_fast


def test_a_conversion_tokenizer_reads_tokenizer_json_natively(tiny_model_dir):
    # The quick path for conversions must tokenize exactly as AutoTokenizer does.
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    assert_same_tokenizer(auto, converted_tokenizer(tiny_model_dir))
