"""Shared fixtures: a tiny byte-level BPE tokenizer and tiny random models of each family.

Nothing here needs the network or ../shared: the tokenizer is trained on a few sentences and the
models are built from configs with a fixed seed.
"""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

CORPUS = [
    "This sentence : means in one word:",
    "After thinking step by step , this sentence means in one word.",
    "A man is playing a guitar. A woman is slicing an onion.",
    "The cat sat on the mat while the dog slept by the door.",
    "Token prepending lets earlier tokens see the whole sentence.",
    "Retrieval augmented generation needs good embeddings.",
    "The essence of a sentence is often captured by its main subjects and actions.",
]

H, LAYERS, HEADS = 64, 6, 4


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty TPR_HOME and no TPR_INDEX: no test reads or writes the
    user's indexes (tests that need their own home set it again)."""
    monkeypatch.setenv("TPR_HOME", str(tmp_path_factory.mktemp("tpr-home")))
    monkeypatch.delenv("TPR_INDEX", raising=False)


def _common(vocab: int) -> dict:
    return dict(
        vocab_size=vocab,
        hidden_size=H,
        intermediate_size=2 * H,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )


def make_config(arch: str, vocab: int, sliding_window: int = 64):
    c = _common(vocab)
    if arch == "llama":
        return LlamaConfig(**c)
    if arch == "qwen2":
        return Qwen2Config(**c)
    if arch == "qwen3":
        return Qwen3Config(**c, head_dim=H // HEADS)
    if arch == "mistral":
        return MistralConfig(**c, sliding_window=sliding_window)
    if arch == "phi3":
        return Phi3Config(**c)
    if arch == "gemma2":
        return Gemma2Config(**c, head_dim=H // HEADS, sliding_window=sliding_window)
    if arch == "gemma3":
        return Gemma3TextConfig(
            **c,
            head_dim=H // HEADS,
            sliding_window=sliding_window,
            query_pre_attn_scalar=H // HEADS,
        )
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab,
            n_embd=H,
            n_layer=LAYERS,
            n_head=HEADS,
            n_positions=512,
            bos_token_id=1,
            eos_token_id=2,
        )
    raise ValueError(arch)


ARCHS = ["llama", "qwen2", "qwen3", "mistral", "phi3", "gemma2", "gemma3", "gpt2"]


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on CORPUS: deterministic, offline, with offsets."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


def build_model(arch: str, vocab: int, sliding_window: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        make_config(arch, vocab, sliding_window),
        attn_implementation="eager" if arch == "gemma2" else "sdpa",  # Gemma 2 has no SDPA path
    )
    return model.eval()


@pytest.fixture(scope="session")
def tiny_models(tokenizer):
    """Cache of tiny models, one per architecture, built on first use."""
    cache: dict[str, torch.nn.Module] = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = build_model(arch, len(tokenizer))
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A tiny Llama saved as a local Hugging Face directory (as a user's model would be)."""
    path = tmp_path_factory.mktemp("tiny-llama")
    build_model("llama", len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
