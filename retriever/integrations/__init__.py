"""LangChain: Embeddings, a retriever and a VectorStore over an index (``langchain-core`` only).

from retriever.integrations import TPEmbeddings, TPRetriever, TPVectorStore
"""

from .embeddings import TPEmbeddings
from .retriever import TPRetriever
from .vectorstore import TPVectorStore

__all__ = ["TPEmbeddings", "TPRetriever", "TPVectorStore"]
