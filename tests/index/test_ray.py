"""Embedding as a Ray Data job on a local Ray (a real cluster of one machine, no network):
the vectors, the fingerprint and the index equal the in-process ones."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from retriever import EmbedderConfig, TPEmbedder  # noqa: E402
from retriever.embed.ray_job import RayOptions, embed_texts  # noqa: E402
from retriever.index.indexer import Indexer, IndexOptions  # noqa: E402
from retriever.index.store import Store  # noqa: E402

from ..index.test_index import para, write  # noqa: E402

TEXTS = [
    "The cat sat on the mat.",
    "A man is playing a guitar. A woman is slicing an onion.",
    "Retrieval augmented generation needs good embeddings.",
    "Short.",
] * 5


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tiny_model_dir):
    return EmbedderConfig(
        model=str(tiny_model_dir), tp_exit=3, device="cpu", dtype="float32", batch_size=4
    )


def test_ray_vectors_equal_in_process_ones(local_ray, config):
    want = TPEmbedder.load(config).encode(TEXTS)
    got = np.zeros_like(want)
    seen = []
    for positions, vectors in embed_texts(config, TEXTS, RayOptions(actors=2, batch_size=6)):
        got[positions] = vectors
        seen += positions.tolist()
    assert seen == list(range(len(TEXTS)))  # in order, each once
    cos = np.sum(got * want, axis=1)
    assert cos.min() > 0.9999, cos


def test_an_index_built_by_a_ray_job_equals_the_in_process_one(local_ray, config, tmp_path):
    root = tmp_path / "docs"
    write(root, {f"f{i}.txt": para(3, f"topic{i}") for i in range(6)})
    embedder = TPEmbedder.load(config)
    opts = dict(chunk_size=24, group_chunks=4)
    r = Indexer(embedder, IndexOptions(**opts, ray=RayOptions(actors=1))).sync(root, tmp_path / "a")
    assert r.added == 6 and r.chunks > 6
    Indexer(embedder, IndexOptions(**opts)).sync(root, tmp_path / "b")
    q = (
        "select path, ordinal, text, vector from chunks join files on files.id = file_id "
        "order by 1, 2"
    )
    with Store.open(tmp_path / "a") as a, Store.open(tmp_path / "b") as b:
        assert a.meta_value("fingerprint") == b.meta_value("fingerprint")
        ra, rb = list(a.db.query(q)), list(b.db.query(q))
    assert [r["text"] for r in ra] == [r["text"] for r in rb]
    va = np.stack([np.frombuffer(r["vector"], np.float32) for r in ra])
    vb = np.stack([np.frombuffer(r["vector"], np.float32) for r in rb])
    assert np.sum(va * vb, axis=1).min() > 0.9999


def test_ray_workers_read_and_chunk_their_own_files(local_ray, config, tmp_path, monkeypatch):
    """The driver hands Ray a manifest, never texts: it does not load or chunk one file (its
    loader and chunker fail here), and the workers' skips are recorded as in-process ones."""
    from retriever.index import indexer as indexer_module
    from retriever.index.chunking import Chunker

    root = tmp_path / "docs"
    write(root, {f"f{i}.txt": para(3, f"topic{i}") for i in range(4)})
    (root / "empty.txt").write_text("   \n")
    (root / "blob.bin").write_bytes(b"\x00\x01" * 100)
    embedder = TPEmbedder.load(config)
    opts = IndexOptions(chunk_size=24, group_chunks=4, ray=RayOptions(actors=1))
    indexer = Indexer(embedder, opts)
    _ = indexer.chunker  # the driver knows the chunk settings, and passes them on

    def no(*args, **kwargs):
        raise AssertionError("the driver read or chunked a file")

    monkeypatch.setattr(indexer_module, "load", no)
    monkeypatch.setattr(Chunker, "split", no)
    report = indexer.sync(root, tmp_path / "ix")
    assert report.added == 4 and report.chunks > 4
    assert dict(report.skipped).keys() >= {"empty.txt"}
    monkeypatch.undo()
    with Store.open(tmp_path / "ix") as s:
        status = {r["path"]: r["status"] for r in s.db["files"].rows}
    assert status["empty.txt"] == "skipped" and status["f0.txt"] == "indexed"
    r2 = Indexer(embedder, IndexOptions(chunk_size=24, group_chunks=4)).sync(root, tmp_path / "ix")
    assert r2.added == r2.updated == 0  # the same index an in-process run would keep
