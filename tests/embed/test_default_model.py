"""Integration: the real default model (Gemma 3 270M from PyPI, converted once and cached)."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    VectorStoreIntegrationTests,
)

from retriever import TPEmbedder
from retriever.embed.config import EmbedderConfig
from retriever.integrations.embeddings import TPEmbeddings
from retriever.integrations.vectorstore import TPVectorStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma():
    # fp32 whatever "auto" picks on this CPU: these tests check exact mechanics (a padded batch
    # equals the text alone to 1e-4), which only full precision keeps; bf16 is tested below.
    return TPEmbedder.load(EmbedderConfig(dtype="float32"))


def test_paraphrase_is_closer_than_unrelated(gemma):
    a, b, c = gemma.encode(
        [
            "A man is playing a guitar.",
            "Someone plays an acoustic guitar.",
            "The central bank raised interest rates again.",
        ]
    )
    assert a @ b > a @ c + 0.1


def test_default_model_tokenizer_matches_auto_tokenizer(gemma):
    # Conversions load their tokenizer.json natively (models.converted_tokenizer); on the real
    # 262k-entry Gemma tokenizer it must agree with transformers' own class.
    from transformers import AutoTokenizer

    from retriever.embed.models import resolve
    from tests.embed.test_models import assert_same_tokenizer

    auto = AutoTokenizer.from_pretrained(resolve("gemma3-270m").path, local_files_only=True)
    assert_same_tokenizer(auto, gemma.tokenizer)


def test_default_model_settings_and_fingerprint(gemma):
    assert gemma.dimension == 640 and gemma.backbone.num_layers == 18
    assert gemma.identity["name"] == "gemma3-270m"
    assert len(gemma.identity["gguf_sha256"]) == 64
    v = gemma.encode("A single sentence.")
    assert v.shape == (640,) and np.isclose(np.linalg.norm(v), 1.0, atol=1e-5)
    # A text alone and inside a padded batch: the same vector.
    batch = gemma.encode(
        [
            "A single sentence.",
            "A much longer sentence that forces padding of the shorter one in this batch.",
        ]
    )
    assert float(v @ batch[0]) > 0.9999


# -- LangChain's standard suites on the real default model ---------------------------------


class TestEmbeddingsSuiteOnDefaultModel(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _model(self, gemma):
        self._gemma = gemma

    @property
    def embeddings_class(self):
        return TPEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"embedder": self._gemma}  # loaded once for the module


class TestVectorStoreSuiteOnDefaultModel(VectorStoreIntegrationTests):
    @pytest.fixture(autouse=True)
    def _model(self, gemma):
        self._gemma = gemma

    def get_embeddings(self):  # the suite's default is a hash-based fake
        return TPEmbeddings(self._gemma)

    @pytest.fixture
    def vectorstore(self, tmp_path):
        store = TPVectorStore(tmp_path / "idx", self.get_embeddings())
        yield store
        store.close()


def test_bf16_on_the_default_model_stays_close_to_fp32(gemma):
    """What --dtype auto may pick on a CPU with native bf16 (benchmarks/cpu_dtype.py has the
    quality figures); emulated bf16 elsewhere gives the same vectors, only slower."""
    bf16 = TPEmbedder.load(EmbedderConfig(dtype="bfloat16"))
    texts = [
        "A man is playing a guitar.",
        "The central bank raised interest rates again.",
        "Token prepending lets earlier tokens see the whole sentence.",
    ]
    cos = np.sum(gemma.encode(texts) * bf16.encode(texts), axis=1)
    assert cos.min() > 0.999, cos
    assert bf16.fingerprint == gemma.fingerprint


@pytest.mark.parametrize("strategy", ["htp", "echo"])
def test_htp_and_echo_on_the_default_model(gemma, strategy):
    from dataclasses import replace

    config = replace(EmbedderConfig.for_strategy(strategy), dtype="float32")
    emb = gemma.with_config(config)
    docs = [
        "The guitar has six strings. It is played by plucking or strumming them.",
        "Interest rates were raised by the central bank. Inflation had stayed high for a year.",
        "Cats sleep for most of the day.",
    ]
    d = emb.encode(docs, batch_size=3)
    assert np.isfinite(d).all() and np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(docs):  # a text alone equals the text in a padded batch
        assert emb.encode(text) @ d[i] > 0.9999
    if strategy == "htp":
        assert len(emb.tokenize(docs[0]).slots) == 2  # one block per sentence
    q = emb.encode_query("Why did the central bank raise interest rates?")
    assert int(np.argmax(d @ q)) == 1
    assert emb.fingerprint != gemma.fingerprint
    assert ("htp" in emb.fingerprint_data) == (strategy == "htp")


def test_the_default_model_answers_a_question_from_its_sources(gemma):
    """`tpr ask` without --llm: the index's own LLM (this model) generates the answer, through
    the chat template the converted GGUF tokenizer carries or the plain layout."""
    from retriever.answer import Source, messages_for
    from retriever.generate import LocalLLM

    sources = [Source(1, "pets.md:1-2", "Pets", "The cat sat on the red mat all afternoon.")]
    llm = LocalLLM(gemma.model, gemma.tokenizer, "gemma3-270m", max_new_tokens=24)
    messages = messages_for("Where did the cat sit?", sources)
    assert "The cat sat on the red mat" in llm.prompt(messages)
    pieces = list(llm.stream(messages))
    answer = "".join(pieces)
    assert len(pieces) >= 2 and answer.strip()  # streamed, piece by piece, and not empty
    assert any(w in answer.lower() for w in ("mat", "[1]")), answer


def test_a_new_index_of_the_default_model_is_late_chunked_and_finds_its_file(gemma, tmp_path):
    """The default a user gets (``tpr index``): late chunking on the real model, a chunk's
    vector read inside its file, and dense search that finds the file a question is about."""
    from retriever.index.indexer import Indexer, IndexOptions
    from retriever.index.store import Store
    from retriever.search.searcher import Searcher

    files = {
        "harbour.txt": "The harbour of Lisbon was rebuilt after the earthquake of 1755. "
        "Ships from Brazil unloaded sugar and gold on its quays for a century. " * 4,
        "bread.txt": "Sourdough bread rises with a starter of wild yeast and bacteria. "
        "The dough ferments for hours before it is shaped and baked in a hot oven. " * 4,
    }
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    emb = gemma.with_config(EmbedderConfig.for_retrieval(dtype="float32"))
    Indexer(emb, IndexOptions(chunk_size=48, overlap=8)).sync(root, tmp_path / "ix")
    with Store.open(tmp_path / "ix") as s:
        stored = s.meta_value("embedder")
        rows = list(s.db.query("select text, vector from chunks order by id"))
    assert (stored["window"], stored["prompt"], stored["tp"]) == (1024, "late-passage", False)
    assert len(rows) > 2
    later = rows[1]  # the second chunk of its file: it has read the first before it
    inside = np.frombuffer(later["vector"], np.float32)
    assert float(inside @ emb.encode(later["text"])) < 0.999  # not the chunk read alone
    searcher = Searcher(tmp_path / "ix", emb)
    try:
        hits = searcher.search("how is sourdough made", k=1, mode="dense")
        assert hits[0].path == "bread.txt"
    finally:
        searcher.close()
