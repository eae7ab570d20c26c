"""tp-retriever: local retrieval with Token Prepending embeddings from decoder-only LLMs."""

from .embed.embedder import EmbedderConfig, TPEmbedder
from .errors import (
    ConfigError,
    EmptyInputError,
    ModelNotFoundError,
    TemplateError,
    TokenizerError,
    TPRError,
    UnsupportedModelError,
)

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
