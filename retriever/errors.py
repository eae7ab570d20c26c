"""Exceptions raised by the library.

The library raises these specific types; ``retriever.cli`` turns them into one-line messages.
Every message names the problem and the fix.
"""

from __future__ import annotations


class TPRError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(TPRError, ValueError):
    """An embedder setting is invalid (bad layer range, unknown prompt, bad pooling...)."""


class TemplateError(ConfigError):
    """A prompt template is malformed (missing TEXT, misplaced or repeated <PST>)."""


class ModelNotFoundError(TPRError):
    """The model spec is neither a named model, a local HF directory nor a .gguf file."""


class TokenizerError(TPRError):
    """A tokenizer splits text wrongly (a GGUF tokenizer converted by a faulty transformers)."""


class UnsupportedModelError(TPRError):
    """The model loaded, but its decoder layers cannot be located generically."""


class EmptyInputError(TPRError, ValueError):
    """Nothing (or only whitespace) was given to embed."""


class DataNotFoundError(TPRError):
    """An evaluation data set is not where it was looked for."""
