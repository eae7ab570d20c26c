"""BEIR evaluation: metrics against hand-computed values, loading, BM25, fusion, the CLI."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from retriever.cli import cli
from retriever.evaluation import beir


def test_metrics_by_hand():
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1}}
    run = {"q1": [("x", 0), ("a", 0), ("b", 0)], "q2": [("y", 0)]}
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert beir.ndcg_at(run, qrels) == pytest.approx(100 * (dcg / idcg + 0) / 2)
    assert beir.recall_at(run, qrels) == pytest.approx(50.0)
    assert beir.mrr_at(run, qrels) == pytest.approx(100 * (0.5 + 0) / 2)


@pytest.fixture
def data(tmp_path):
    docs = {
        "d1": ("Cats", "Cats purr and sleep all day."),
        "d2": ("Dogs", "Dogs bark at the mail carrier."),
        "d3": ("Fish", "Fish swim in cold water."),
        "d4": ("Birds", "Birds sing at dawn in the trees."),
    }
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "title": t, "text": x}) for k, (t, x) in docs.items())
    )
    qs = {"1": "why do cats purr", "2": "dogs barking", "3": "water fish", "4": "bird song"}
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "text": v}) for k, v in qs.items())
    )
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels/test.tsv").write_text(
        "query-id\tcorpus-id\tscore\r\n1\td1\t1\r\n2\td2\t1\r\n"
    )
    (tmp_path / "qrels/train.tsv").write_text("query-id\tcorpus-id\tscore\n3\td3\t1\n4\td4\t1\n")
    return tmp_path


def test_load_and_bm25(data):
    ds = beir.load(data)
    assert ds.corpus["d1"].startswith("Cats\n\nCats purr") and set(ds.qrels) == {"test", "train"}
    assert list(ds.split_queries("test")) == ["1", "2"]
    run = beir.BM25(ds.corpus).run(ds.split_queries("test"))
    assert run["1"][0][0] == "d1" and run["2"][0][0] == "d2"
    assert beir.metrics(run, ds.qrels["test"])["ndcg@10"] == pytest.approx(100.0)
    small = beir.load(data, limit_docs=2)
    assert set(small.corpus) == {"d1", "d2", "d3", "d4"}  # judged docs are always kept


def test_weight_zero_fusion_is_bm25_order():
    bm25 = {"q": [("a", 3.0), ("b", 2.0), ("c", 1.0)]}
    dense = {"q": [("c", 0.9), ("b", 0.5), ("a", 0.1)]}
    assert [d for d, _ in beir.fuse(dense, bm25, 0.0)["q"]] == ["a", "b", "c"]
    assert [d for d, _ in beir.fuse(dense, bm25, 10.0)["q"]] == ["c", "b", "a"]
    qrels = {"q": {"a": 1}}
    w, grid = beir.choose_weight(dense, bm25, qrels)
    assert w == 0.0 and grid[0.0] == pytest.approx(100.0)


def test_score_fusion_weight_zero_is_bm25_order_too():
    dense = {"q": [("c", 0.9), ("b", 0.5), ("a", 0.1)]}
    bm25 = {"q": [("a", 9.0), ("b", 5.0), ("c", 1.0)]}
    assert [d for d, _ in beir.fuse(dense, bm25, 0.0, "score")["q"]] == ["a", "b", "c"]
    fused = beir.fuse(dense, bm25, 2.0, "score")["q"]
    assert fused == [("c", 2.0), ("b", pytest.approx(1.5)), ("a", 1.0)]


def test_rerank_reorders_only_the_top_depth_by_dense_score():
    import numpy as np

    first = {"q": [("a", 4.0), ("b", 3.0), ("c", 2.0), ("d", 1.0)]}
    ids = ["a", "b", "c", "d"]
    docs = np.array([[0.1], [0.2], [0.9], [0.5]])  # dense prefers c, then d, b, a
    q = np.array([[1.0]])

    def order(depth):
        return [d for d, _ in beir.rerank(first, ids, docs, ["q"], q, depth)["q"]]

    assert order(0) == ["a", "b", "c", "d"]
    assert order(2) == ["b", "a", "c", "d"]  # c is outside the top 2: it cannot move up
    assert order(4) == ["c", "d", "b", "a"]
    scores = [s for _, s in beir.rerank(first, ids, docs, ["q"], q, 2)["q"]]
    assert scores == sorted(scores, reverse=True)  # the tail stays below the re-ranked head
    # Train picks the depth; a dense side that only hurts gives depth 0, the first stage.
    n, grid = beir.choose_depth(first, ids, docs, ["q"], q, {"q": {"a": 1}})
    assert n == 0 and grid[0] == pytest.approx(100.0) and grid[5] < 100.0
    n, _ = beir.choose_depth(first, ids, docs, ["q"], q, {"q": {"c": 1}})
    assert n == 5  # the smallest depth in RERANK_DEPTHS that brings c to the top


def test_cached_vectors_never_pickle(tmp_path):
    import numpy as np

    calls = []
    v = beir.cached_vectors(tmp_path, "k", lambda: calls.append(1) or np.ones((2, 3)))
    again = beir.cached_vectors(tmp_path, "k", lambda: calls.append(1) or np.zeros((2, 3)))
    assert calls == [1] and (again == v).all()


def test_eval_beir_cli(data, tiny_model_dir, tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "eval",
            "beir",
            "--data",
            str(data),
            "--model",
            str(tiny_model_dir),
            "--tp-exit",
            "3",
            "--models",
            f"{tiny_model_dir}:tp",
            "--cache",
            str(tmp_path / "cache"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    systems = {row["system"]: row for row in out["rows"]}
    assert systems["bm25"]["ndcg@10"] == pytest.approx(100.0)
    assert any(s.startswith("hybrid RRF(") for s in systems)
    assert any(s.endswith("TP last") for s in systems) and any(
        s.endswith("TP mean") for s in systems
    )
    assert any(s.endswith("TP last+mean") for s in systems)
    assert any(s.endswith("TP sparse") for s in systems)  # the tiny model's last layer
    assert any(s.startswith("hybrid score(") for s in systems)
    assert any(k.startswith("3-way") for k in out["hybrid_weights"])
    # BM25 is perfect on this data, so train picks depth 0: re-ranking cannot make it worse.
    rerank = [s for s in systems if s.startswith("rerank(bm25 top 0 by ")]
    assert rerank and systems[rerank[0]]["ndcg@10"] == pytest.approx(100.0)


def test_three_runs_fuse_by_weighted_rrf():
    a = {"q": [("x", 0.9), ("y", 0.5)]}
    b = {"q": [("y", 3.0), ("z", 1.0)]}
    c = {"q": [("z", 2.0)]}
    fused = dict(beir.fuse_runs({"a": a, "b": b, "c": c}, {"a": 1.0, "b": 2.0, "c": 0.5})["q"])
    assert fused == pytest.approx({"x": 1 / 61, "y": 1 / 62 + 2 / 61, "z": 2 / 62 + 0.5 / 61})


def test_eval_beir_takes_vanilla_and_refuses_bad_specs(data, tiny_model_dir, tmp_path):
    args = ["eval", "beir", "--data", str(data), "--cache", str(tmp_path / "c"), "--json"]
    spec = f"{tiny_model_dir}:tp,{tiny_model_dir}:vanilla"
    r = CliRunner().invoke(cli, [*args, "--models", spec, "--tp-exit", "3", "--no-sparse"])
    assert r.exit_code == 0, r.output
    systems = {row["system"] for row in json.loads(r.stdout)["rows"]}
    assert any(s.endswith("TP last") for s in systems)
    assert any(s.endswith("vanilla last") for s in systems)
    assert not any("sparse" in s for s in systems)
    bad = CliRunner().invoke(cli, [*args, "--models", "gemma3-270m:nope"])
    assert bad.exit_code != 0 and "tp or vanilla" in bad.output


def test_ndcg_uses_the_grade_as_gain_like_beir():
    qrels = {"q": {"a": 2, "b": 1, "c": 0, "d": -1}}
    run = {"q": [("b", 0), ("a", 0), ("d", 0)]}
    dcg = 1 / math.log2(2) + 2 / math.log2(3)  # pytrec_eval ndcg_cut: gain = grade
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert beir.ndcg_at(run, qrels) == pytest.approx(100 * dcg / idcg)


def test_published_figures_belong_to_their_data_set_and_the_table_prints(
    data, tiny_model_dir, tmp_path
):
    args = ["eval", "beir", "--data", str(data), "--cache", str(tmp_path / "c")]
    r = CliRunner().invoke(cli, [*args, "--models", f"{tiny_model_dir}:tp", "--tp-exit", "3"])
    assert r.exit_code == 0, r.output  # the re-rank pick (a depth) no longer ends in KeyError
    table = [line for line in r.stdout.splitlines() if line.startswith("| bm25 |")]
    assert table and table[0].rstrip().endswith("|  |")  # no SciFact figure on other data
    assert "rerank depth 0 for " in r.stdout
    assert beir.PUBLISHED_NDCG["scifact"]["bm25"] == 66.5
