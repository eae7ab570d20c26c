"""tp-retriever: local retrieval with Token Prepending embeddings from decoder-only LLMs."""

from typing import TYPE_CHECKING

from .embed.config import EmbedderConfig
from .errors import (
    ConfigError,
    EmptyInputError,
    ModelNotFoundError,
    TemplateError,
    TokenizerError,
    TPRError,
    UnsupportedModelError,
)

if TYPE_CHECKING:  # for type checkers and editors; at run time see __getattr__ below
    from .embed.embedder import TPEmbedder

__all__ = [
    "ConfigError",
    "EmbedderConfig",
    "EmptyInputError",
    "ModelNotFoundError",
    "TPEmbedder",
    "TPRError",
    "TemplateError",
    "TokenizerError",
    "UnsupportedModelError",
]


def __getattr__(name: str):
    # TPEmbedder pulls in torch (~1.5-2.5 s): imported on first use, so the commands and searches
    # that never load a model (BM25, info, list) start without it.
    if name == "TPEmbedder":
        from .embed.embedder import TPEmbedder

        return TPEmbedder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
