"""Embedding: the TP engine on any causal LM, and the embedder factory."""
