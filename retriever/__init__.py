"""tp-retriever: local retrieval with Token Prepending embeddings from decoder-only LLMs."""

from .embed.config import EmbedderConfig
from .embed.embedder import TPEmbedder
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
