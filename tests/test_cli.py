"""The tpr CLI on a tiny local model directory (what a user's own HF model looks like)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from retriever.cli import cli


def test_models_lists_named_models_with_tp_defaults():
    r = CliRunner().invoke(cli, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = {m["name"]: m for m in json.loads(r.output)}
    assert rows["gemma3-270m"]["default"] is True
    assert rows["gemma3-270m"]["tp_start"] < rows["gemma3-270m"]["tp_exit"]
    assert "smollm2-135m" in rows


def test_embed_json_on_local_directory(tiny_model_dir):
    r = CliRunner().invoke(
        cli,
        [
            "embed",
            "hello world",
            "a cat",
            "--model",
            str(tiny_model_dir),
            "--tp-exit",
            "3",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["embeddings"]) == 2
    assert len(data["embeddings"][0]["vector"]) == 64
    assert data["config"]["tp_exit"] == 3 and len(data["fingerprint"]) == 64


def test_embed_human_output(tiny_model_dir):
    r = CliRunner().invoke(
        cli, ["embed", "hello", "--model", str(tiny_model_dir), "--tp-exit", "3"]
    )
    assert r.exit_code == 0, r.output
    assert "dimension 64" in r.stdout and "norm 1.0000" in r.stdout


def test_errors_are_one_line_messages(tiny_model_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["embed", "x", "--model", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "Error: model" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["embed", "x", "--model", str(tiny_model_dir), "--output-layer", "99"])
    assert r.exit_code == 1 and "out of range" in r.output
    r = runner.invoke(cli, ["eval", "sts", "--data", str(tmp_path), "--model", str(tiny_model_dir)])
    assert r.exit_code == 1 and "not found" in r.output


def test_index_help_shows_where_a_new_index_takes_its_settings():
    """`tpr index --help` must not show the paper's defaults as what a new index gets (the
    model's retrieval preset sets prompt, pooling and TP; issue 25)."""
    from click.testing import CliRunner

    from retriever.cli import cli

    text = " ".join(CliRunner().invoke(cli, ["index", "--help"]).output.split())
    assert "default: prompteol" not in text and "default: last" not in text
    assert text.count("retrieval preset") >= 3
    embed = " ".join(CliRunner().invoke(cli, ["embed", "--help"]).output.split())
    assert "default: prompteol" in embed  # `tpr embed` does use the paper's defaults
