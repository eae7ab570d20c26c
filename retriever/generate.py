"""Answering with a local model: a transformers causal LM, a GGUF file, or the index's own LLM.

Design. :class:`~retriever.answer.Endpoint` talks to a server; :class:`LocalLLM` has the same
``stream(messages)`` and runs the model in this process: the chat messages go through the
tokenizer's chat template (or a plain "System/User/Assistant" layout when it has none), the
answer is generated greedily and streamed piece by piece (transformers' ``TextIteratorStreamer``
on a worker thread). Three ways to get one (:func:`llm_for`):

* ``--llm DIR``: a local Hugging Face model directory (any causal LM transformers loads);
* ``--llm FILE.gguf``: through llama-cpp-python, an optional extra
  (``pip install llama-cpp-python``: it compiles llama.cpp on install, a few minutes, needs a C
  compiler); without it the message says so and names the alternatives;
* no ``--llm``: the index's own LLM (the one that embeds; for the default index, Gemma 3 270M),
  with a warning that a 270M model answers poorly. An index embedded by a sentence encoder
  (MiniLM) has no LLM: the message says to give ``--llm``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from .answer import LLMError

MAX_NEW_TOKENS = 512
WEAK = (
    "answering with the index's own {name} model, which answers poorly at this size; for "
    "better answers give --llm http://127.0.0.1:11434/v1 --llm-model llama3.2 (Ollama), an "
    "OpenAI-compatible URL, or a local model directory"
)


class LocalLLM:
    """A causal LM in this process, with :class:`~retriever.answer.Endpoint`'s ``stream``.

    Args:
        model: a transformers causal LM (eval mode).
        tokenizer: its tokenizer.
        name: how to name it in messages.
        max_new_tokens: the longest answer.
    """

    def __init__(self, model, tokenizer, name: str, max_new_tokens: int = MAX_NEW_TOKENS):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_directory(cls, path: Path, **kw) -> LocalLLM:
        """Load a local Hugging Face model directory.

        Raises:
            LLMError: it is not a causal LM transformers can load.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path).eval()
        except (OSError, ValueError) as e:
            raise LLMError(
                f"--llm {path}: not a model directory transformers can load ({e})"
            ) from None
        return cls(model, tokenizer, Path(path).name, **kw)

    def prompt(self, messages: list[dict]) -> str:
        """The messages as one prompt: the chat template; without one, the turn markers the
        vocabulary shows (Gemma's, ChatML), else a plain layout."""
        if getattr(self.tokenizer, "chat_template", None):
            try:
                return self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            except Exception:  # a template that refuses the system role: fold it into the user's
                merged = [{"role": "user", "content": "\n\n".join(m["content"] for m in messages)}]
                return self.tokenizer.apply_chat_template(
                    merged, tokenize=False, add_generation_prompt=True
                )
        vocab = self.tokenizer.get_vocab()
        if "<start_of_turn>" in vocab:  # Gemma's turns (a converted GGUF keeps no template)
            text = "\n\n".join(m["content"] for m in messages)
            return f"<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"
        if "<|im_start|>" in vocab:  # ChatML (SmolLM2, Qwen)
            turns = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
            return "".join(turns) + "<|im_start|>assistant\n"
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(turns) + "\n\nAssistant:"

    def stream(self, messages: list[dict]) -> Iterator[str]:
        """The answer's text, piece by piece as it is generated (greedy)."""
        import torch
        from transformers import TextIteratorStreamer

        enc = self.tokenizer(self.prompt(messages), return_tensors="pt", add_special_tokens=False)
        device = next(self.model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.no_grad():
                    self.model.generate(
                        **enc,
                        max_new_tokens=self.max_new_tokens,
                        do_sample=False,
                        # small models loop on a phrase under greedy decoding ("(s) (s) (s)")
                        repetition_penalty=1.15,
                        no_repeat_ngram_size=4,
                        streamer=streamer,
                        pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                    )
            except BaseException as e:  # reported on the caller's thread
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True, name="tpr-generate")
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()
        if failure:
            raise LLMError(f"the local model {self.name} failed: {failure[0]}") from failure[0]


class GGUFLLM:
    """A GGUF file through llama-cpp-python (an optional extra), with ``stream``."""

    def __init__(self, path: Path, max_new_tokens: int = MAX_NEW_TOKENS):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise LLMError(
                f"--llm {path}: a GGUF file needs llama-cpp-python (`pip install "
                "llama-cpp-python`, which compiles llama.cpp: a C compiler and a few minutes); "
                "or serve it with llama.cpp's `llama-server -m FILE --port 8080` and give --llm "
                "http://127.0.0.1:8080/v1"
            ) from None
        self.name = Path(path).name
        self.max_new_tokens = max_new_tokens
        self.llm = Llama(model_path=str(path), n_ctx=8192, verbose=False)

    def stream(self, messages: list[dict]) -> Iterator[str]:
        for event in self.llm.create_chat_completion(
            messages, max_tokens=self.max_new_tokens, temperature=0.0, stream=True
        ):
            piece = event["choices"][0].get("delta", {}).get("content")
            if piece:
                yield piece


def llm_for(
    spec: str | None,
    searcher=None,
    model: str = "default",
    timeout: float = 120.0,
    max_new_tokens: int = MAX_NEW_TOKENS,
):
    """The LLM ``--llm`` names: a URL, a model directory, a .gguf file, or (None) the index's own.

    Returns:
        (llm, warning or None).

    Raises:
        LLMError: what was named cannot answer, with what to give instead.
    """
    from .answer import Endpoint

    if spec and "://" in spec:
        return Endpoint(spec, model, timeout), None
    if spec:
        path = Path(spec).expanduser()
        if path.is_dir():
            return LocalLLM.from_directory(path, max_new_tokens=max_new_tokens), None
        if path.suffix.lower() == ".gguf" and path.is_file():
            return GGUFLLM(path, max_new_tokens), None
        raise LLMError(
            f"--llm {spec!r}: give an OpenAI-compatible URL ending in /v1, a local model "
            "directory, or a .gguf file"
        )
    embedder = getattr(searcher, "embedder", None)
    model_obj = getattr(embedder, "model", None)
    if model_obj is None or not hasattr(model_obj, "generate"):
        raise LLMError(
            "this index's embedder is not an LLM (a sentence encoder cannot answer): give "
            "--llm URL (e.g. http://127.0.0.1:11434/v1 for Ollama) or a local model directory"
        )
    name = embedder.config.model
    return LocalLLM(model_obj, embedder.tokenizer, name, max_new_tokens), WEAK.format(name=name)
