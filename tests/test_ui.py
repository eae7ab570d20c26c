"""The Streamlit app, driven with streamlit.testing (AppTest) over a real small index."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from retriever import TPEmbedder
from retriever.index.indexer import Indexer, IndexOptions

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


@pytest.fixture
def ui_index(tmp_path, tiny_model_dir, monkeypatch):
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "cats.txt").write_text("The cat sat on the mat.\n\nA second cat paragraph here.")
    (docs / "dogs.md").write_text("Dogs chase cars down the road.")
    for i in range(4):
        (docs / f"more{i}.txt").write_text(f"Filler document {i} about birds and trees.")
    (docs / "evil.html").write_text(
        "<p>Click ![img](http://evil.example/x.png) and [link](http://evil.example) "
        "&lt;script&gt;alert(1)&lt;/script&gt; cat</p>"
    )
    (docs / "dup1.txt").write_text("Exactly the same words in two files.")
    (docs / "dup2.txt").write_text("Exactly the same words in two files.")
    (docs / "empty.txt").write_text("")
    emb = TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3)
    Indexer(emb, IndexOptions(chunk_size=48, overlap=0)).sync(docs, idx)
    monkeypatch.setenv("TPR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TPR_INDEX", str(idx))
    return idx


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_no_index_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TPR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TPR_INDEX", raising=False)
    at = run_app()
    assert "tpr demo" in at.info[0].value


def test_index_card_and_search_with_highlights(ui_index):
    at = run_app()
    card = at.sidebar.text[0].value
    assert "fingerprint" in card and "files: 9 indexed, 1 skipped" in card
    at.text_input(key="query").input("cat").run()
    assert not at.exception
    texts = [m.value for m in at.markdown]
    assert any("**cat**" in t for t in texts)
    assert any(r"cats\.txt" in t for t in texts)  # paths are escaped too
    at.radio(key="mode").set_value("bm25").run()
    assert "bm25" in " ".join(m.value for m in at.markdown)


def test_document_text_is_never_markup(ui_index):
    at = run_app()
    at.slider(key="k").set_value(20)
    at.text_input(key="query").input("click cat").run()
    bodies = [m.value for m in at.markdown if " · chunk " not in m.value]  # chunk texts
    joined = " ".join(bodies)
    assert "![img](" not in joined and "[link](" not in joined and "<script>" not in joined
    assert r"\!\[img\]\(" in joined or r"\[link\]\(" in joined  # shown, escaped


def test_neighbours_from_results_and_by_position(ui_index):
    at = run_app()
    at.text_input(key="query").input("cat").run()
    assert at.selectbox(key="nn_pick").options
    table = at.tabs[2].dataframe[0].value  # the Neighbours tab
    assert len(table) == 5 and {"similarity", "path", "chunk", "text"} <= set(table.columns)
    assert list(table["similarity"]) == sorted(table["similarity"], reverse=True)
    at.radio(key="nn_source").set_value("By file and position").run()
    at.text_input(key="nn_path").input("dogs.md").run()
    assert "dogs.md" not in set(at.tabs[2].dataframe[0].value["path"])  # itself excluded
    at.text_input(key="nn_path").input("missing.txt").run()
    assert "No chunk 0 in missing.txt" in at.error[0].value


def test_near_duplicates(ui_index):
    at = run_app()
    at.button(key="dup_go").click().run()
    pairs = at.tabs[3].dataframe[0].value
    assert len(pairs) >= 1
    first = pairs.iloc[0]
    assert {first["a"], first["b"]} == {"dup1.txt #0", "dup2.txt #0"}


def test_tp_vs_vanilla_and_map(ui_index):
    at = run_app()
    at.text_input(key="query").input("cat").run()
    at.button(key="tp_go").click().run()
    assert not at.exception
    table = at.tabs[4].dataframe[0].value
    assert list(table["TP rank"]) == list(range(1, len(table) + 1))
    assert sorted(table["vanilla rank"]) == list(range(1, len(table) + 1))
    chart = at.tabs[5].children[0]
    assert chart.type == "vega_lite_chart"
    plotted = str(chart.proto)  # spec and inline datasets
    assert "query" in plotted and "result" in plotted  # the query and its results are plotted
    # a legend of what each point is, colour by file, a tooltip with citation and heading
    assert all(w in plotted for w in ("results", "neighbours", "cross", "diamond", "file"))
    assert "citation" in plotted and "heading" in plotted and "cats.txt:1" in plotted


def test_manage_only_under_allowed_roots(ui_index, tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    at = run_app()
    assert "Indexing from the app is off" in at.tabs[6].info[0].value
    monkeypatch.setenv("TPR_ROOTS", str(tmp_path / "elsewhere"))
    at = run_app()
    assert "not under an allowed root" in at.tabs[6].error[0].value
    monkeypatch.setenv("TPR_ROOTS", str(tmp_path))
    (docs / "new.txt").write_text("A new file about owls.")
    at = run_app()
    at.button(key="sync_go").click().run()
    assert not at.exception
    assert "added 1" in at.tabs[6].success[0].value


def test_manage_removes_a_file_and_indexes_a_new_folder(ui_index, tmp_path, monkeypatch):
    from retriever.index.store import Store

    at = run_app()
    assert at.button(key="rm_go").disabled  # nothing is removed without the tick
    at.selectbox(key="rm_path").set_value("dogs.md").run()
    at.checkbox(key="rm_ok").check().run()
    at.button(key="rm_go").click().run()
    assert not at.exception and "removed dogs.md" in at.tabs[6].success[0].value
    assert (tmp_path / "docs" / "dogs.md").exists()  # the file itself is never touched
    with Store.open(ui_index) as s:
        assert "dogs.md" not in {r["path"] for r in s.db["files"].rows}

    other = tmp_path / "other"
    other.mkdir()
    (other / "owls.txt").write_text("Owls hunt at night.")
    assert "Off" in " ".join(c.value for c in at.tabs[6].caption)  # no roots: not offered
    assert not [w for w in at.tabs[6].text_input if w.key == "new_folder"]
    monkeypatch.setenv("TPR_ROOTS", str(tmp_path / "docs"))
    at = run_app()
    at.text_input(key="new_folder").input(str(other)).run()
    at.text_input(key="new_name").input("owls").run()
    at.button(key="new_go").click().run()
    assert "not under an allowed root" in at.tabs[6].error[0].value
    assert not (tmp_path / "home" / "indexes" / "owls").exists()
    monkeypatch.setenv("TPR_ROOTS", str(other))
    at = run_app()
    at.text_input(key="new_folder").input(str(other)).run()
    at.text_input(key="new_name").input("owls").run()
    at.selectbox(key="new_preset").set_value("all-MiniLM-L6-v2 (baseline)").run()
    at.button(key="new_go").click().run()
    assert not at.exception and "added 1" in at.tabs[6].success[0].value
    assert (tmp_path / "home" / "indexes" / "owls" / "index.db").exists()


def test_highlight_escapes_and_neutralises_indentation():
    from retriever.search.inspect import escape_markdown, highlight

    text = "Intro.\n    indented __enter__() line\n\tTabbed [x](y) <b>z</b>"
    out = highlight(text, "enter line")
    for line in out.splitlines()[1:]:
        assert not line.startswith((" ", "\t"))  # no code blocks from indentation
    assert r"\_\_enter\_\_\(\)" in out and "**line**" in out
    assert "[x](y)" not in out and "<b>" not in out
    assert escape_markdown("a*b") == r"a\*b"


def test_fusion_choice_reaches_the_search(ui_index):
    at = run_app()
    fusion = at.selectbox(key="fusion")
    # An unmeasured model: score fusion with a small dense weight (search.FALLBACK_HYBRID).
    assert fusion.options[0].startswith("default: score")
    at.text_input(key="query").input("cat").run()
    score_scores = [m.value for m in at.markdown if "fused" in m.value]
    at.selectbox(key="fusion").set_value("rrf").run()
    assert not at.exception
    rrf_scores = [m.value for m in at.markdown if "fused" in m.value]
    # Score fusion's fused values are sums of normalised scores (the best is 2 or near it),
    # RRF's are around 1/61.
    assert rrf_scores and score_scores and rrf_scores != score_scores
    assert any("fused 1." in t or "fused 2." in t for t in score_scores)


def test_sparse_mode_is_offered_only_where_stored(ui_index, tiny_model_dir):
    at = run_app()
    assert "sparse" not in at.radio(key="mode").options
    emb = TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3)
    docs = ui_index.parent / "docs"
    Indexer(emb, IndexOptions(chunk_size=48, overlap=0, sparse=True)).sync(docs, ui_index)
    at = run_app()
    assert "sparse" in at.radio(key="mode").options
    at.text_input(key="query").input("the cat on the mat").run()
    at.radio(key="mode").set_value("sparse").run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "sparse" in shown and r"cats\.txt" in shown


@pytest.mark.parametrize("kind", ["minilm", "echo"])
def test_tp_tab_explains_an_index_without_tp(kind, tmp_path, tiny_model_dir, monkeypatch):
    from retriever import EmbedderConfig
    from retriever.embed.factory import load_embedder

    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "cats.txt").write_text("The cat sat on the mat.")
    (docs / "dogs.txt").write_text("Dogs chase cars down the road.")
    if kind == "minilm":
        emb = load_embedder(EmbedderConfig(model="minilm"))
    else:
        emb = TPEmbedder.load(model=str(tiny_model_dir), tp=False, prompt="echo-passage")
    Indexer(emb).sync(docs, idx)
    monkeypatch.setenv("TPR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TPR_INDEX", str(idx))
    at = run_app()
    at.text_input(key="query").input("cat").run()
    assert not at.exception and not at.tabs[4].error
    note = at.tabs[4].info[0].value
    assert ("sentence encoder" if kind == "minilm" else "without TP (echo") in note
    assert not [b for b in at.tabs[4].button if b.key == "tp_go"]  # nothing to press


from .test_ask import llm  # noqa: E402, F401 (the fake OpenAI-compatible endpoint)


def test_ask_tab_streams_a_linked_answer_with_its_sources(ui_index, llm):  # noqa: F811
    at = run_app()
    at.sidebar.text_input(key="llm_url").input(llm).run()
    at.text_input(key="ask_q").input("where did the cat sit").run()
    at.button(key="ask_go").click().run()
    assert not at.exception, at.exception
    tab = at.tabs[1]
    answer = tab.markdown[0].value
    assert "sat on the mat" in answer and "[\\[1\\]](#source-1)" in answer
    assert "\\[7\\]" in answer and "(#source-7)" not in answer  # no such source: plain text
    assert "[7]" in tab.warning[0].value
    heads = [h.value for h in tab.subheader]
    assert heads[0].startswith("[1] ") and len(heads) == 5
    sent = [t.value for t in tab.text]
    assert any("Dogs chase cars" in t for t in sent)  # the sources' texts, as plain text
    prompt = [t for t in sent if "Source [1]" in t or "[1]" in t]
    assert prompt  # the prompt sent is shown


def test_result_cards_options_and_identical_texts(ui_index):
    at = run_app()
    at.text_input(key="query").input("same words").run()
    assert not at.exception
    tab = at.tabs[0]
    also = [c.value for c in tab.caption if c.value.startswith("the same text also in")]
    assert len(also) == 1 and ("dup1" in also[0] or "dup2" in also[0])
    codes = [c.value for c in tab.code]
    assert codes and all(c.split(":")[0] in {p.name for p in ui_index.parent.glob("docs/*")}
                         for c in codes)  # fmt: skip
    assert all("\u2060" not in c for c in codes)  # the copied citation is plain
    at.toggle(key="mmr").set_value(True).run()
    at.number_input(key="min_score").set_value(5.0).run()
    assert not at.exception and at.tabs[0].warning[0].value == "No results."
    at.number_input(key="min_score").set_value(0.0).run()
    at.text_area(key="metadata").input("lang = en").run()
    assert not at.exception and at.tabs[0].warning[0].value == "No results."  # files have none
