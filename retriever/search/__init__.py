"""Search: dense, BM25, sparse and hybrid over one index, and inspection."""
