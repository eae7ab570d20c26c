"""LangChain defaults that match the index (issue 17, item 5): TPEmbeddings() has the settings
`tpr index` uses, TPEmbeddings.from_index opens any index, library errors never advise
--rebuild, and TPRetriever follows LangChain's conventions (search_kwargs, unknown keys refused,
filters by Filter fields)."""

from __future__ import annotations

import pytest

from retriever import EmbedderConfig, TPEmbedder
from retriever.errors import ConfigError, IndexMismatchError
from retriever.index.indexer import Indexer, IndexOptions
from retriever.integrations import TPEmbeddings, TPRetriever, TPVectorStore

from ..fakes import FakeEmbedder

DOCS = {
    "cats.txt": "The cat sat on the mat.",
    "dogs.txt": "The dog ran after the car.",
    "fish.txt": "A fish swam in the sea.",
}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


def test_default_embeddings_are_the_retrieval_preset(monkeypatch, tokenizer):
    seen = []

    def fake_load(config):
        seen.append(config)
        return FakeEmbedder(tokenizer)

    monkeypatch.setattr("retriever.embed.factory.load_embedder", fake_load)
    TPEmbeddings()
    TPEmbeddings(pooling="last")
    TPEmbeddings(config=EmbedderConfig())  # the paper's STS settings, on request
    assert seen[0] == EmbedderConfig.for_retrieval()
    assert seen[0].prompt == "late-passage" and seen[0].query_prompt == "echo-query"
    assert seen[1] == EmbedderConfig.for_retrieval(pooling="last")
    assert seen[2] == EmbedderConfig()


def test_from_index_opens_what_tpr_index_built(tmp_path, folder, tiny_model_dir):
    idx = tmp_path / "idx"
    config = EmbedderConfig(model=str(tiny_model_dir), tp_exit=3, pooling="mean")
    built = TPEmbedder.load(config)
    Indexer(built, IndexOptions(chunk_size=48)).sync(folder, idx)
    emb = TPEmbeddings.from_index(idx, device="cpu")
    assert emb.embedder.fingerprint == built.fingerprint
    store = TPVectorStore(idx, emb)  # no mismatch: the same settings
    assert store.similarity_search("a cat on a mat", k=1)[0].metadata["source"] == "cats.txt"
    store.close()
    with pytest.raises(ConfigError, match="only device, dtype and batch_size"):
        TPEmbeddings.from_index(idx, pooling="last")


def test_a_mismatch_from_library_code_never_advises_rebuild(tmp_path, folder, tiny_model_dir):
    idx = tmp_path / "idx"
    Indexer(TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3)).sync(folder, idx)
    other = TPEmbeddings(TPEmbedder.load(model=str(tiny_model_dir), tp_exit=2))
    with pytest.raises(IndexMismatchError) as e:
        TPVectorStore(idx, other)
    assert "--rebuild" not in str(e.value) and "TPEmbeddings.from_index" in str(e.value)
    assert "tp_exit: 3 -> 2" in str(e.value)


def test_retriever_follows_langchain_conventions(tmp_path, folder, tokenizer):
    idx = tmp_path / "idx"
    fake = FakeEmbedder(tokenizer)
    Indexer(fake).sync(folder, idx)
    r = TPRetriever.from_index(idx, fake, search_kwargs={"k": 2, "mode": "bm25"})
    assert (r.k, r.mode) == (2, "bm25")
    assert len(r.invoke("the cat dog fish")) == 2
    assert len(r.invoke("the cat dog fish", search_kwargs={"k": 1})) == 1
    only = r.invoke("the", filter={"path_glob": "cats*"})  # Filter fields, not metadata
    assert [d.metadata["source"] for d in only] == ["cats.txt"]
    typed = r.invoke("the", filter={"suffixes": [".txt"], "path_glob": "d*"})
    assert [d.metadata["source"] for d in typed] == ["dogs.txt"]
    for bad in ({"kk": 3}, {"search_kwargs": {"kk": 3}}):
        with pytest.raises(ConfigError, match="unknown settings \\['kk'\\]"):
            TPRetriever.from_index(idx, fake, **bad)
        with pytest.raises(ConfigError, match="unknown settings \\['kk'\\]"):
            r.invoke("cat", **bad)
