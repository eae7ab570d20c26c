"""An index built with situated chunks (``window`` > 0): every stored vector is its chunk
pooled inside its file, and a file re-read as a document gives the same vectors."""

from __future__ import annotations

import numpy as np

from retriever import EmbedderConfig, TPEmbedder
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import Store

from .test_index import para, write


def test_an_index_stores_each_chunk_embedded_inside_its_file(tiny_model_dir, tmp_path):
    root = tmp_path / "docs"
    write(root, {"a.md": "# Title\n\n" + para(6, "cat"), "b.txt": para(2, "dog")})
    config = EmbedderConfig(
        model=str(tiny_model_dir),
        prompt="echo-passage",
        tp=False,
        output_layer=3,
        pooling="mean",
        window=64,
        device="cpu",
        dtype="float32",
    )
    embedder = TPEmbedder.load(config)
    report = Indexer(embedder, IndexOptions(chunk_size=24, overlap=4)).sync(root, tmp_path / "ix")
    assert report.chunks > 4
    with Store.open(tmp_path / "ix") as s:
        assert s.meta_value("embedder")["window"] == 64
        rows = list(
            s.db.query(
                'select f.path, c.start, c."end", c.vector from chunks c join files f '
                "on f.id = c.file_id order by f.path, c.ordinal"
            )
        )
    for path in ("a.md", "b.txt"):
        mine = [r for r in rows if r["path"] == path]
        text = (root / path).read_text()
        (want,) = embedder.encode_chunks([(text, [(r["start"], r["end"]) for r in mine])])
        got = np.stack([np.frombuffer(r["vector"], np.float32) for r in mine])
        assert np.sum(got * want, axis=1).min() > 0.9999
        alone = embedder.with_config(EmbedderConfig(**{**config.__dict__, "window": 0}))
        assert (
            np.sum(got * alone.encode([text[r["start"] : r["end"]] for r in mine]), 1).min() < 0.999
        )
