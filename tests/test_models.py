"""Model spec resolution and identity (no downloads, ever)."""

from __future__ import annotations

import pytest

from retriever.errors import ModelNotFoundError
from retriever.models import _dir_identity, resolve


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
