"""End to end: `streamlit run ui/app.py` on localhost, driven by headless Chromium.

Uses Debian's chromium (installed by .ci/run) through Playwright with ``executable_path``, so
no browser is downloaded at test time. Saves a screenshot of the results page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run)")


@pytest.fixture
def server(tmp_path, tiny_model_dir):
    from retriever import TPEmbedder
    from retriever.index.indexer import Indexer, IndexOptions
    from tests.ui_server import running_app

    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "cats.txt").write_text("The cat sat on the mat. Cats purr.")
    (docs / "dogs.txt").write_text("Dogs chase cars down the road.")
    (docs / "birds.txt").write_text("Birds sing in the trees at dawn.")
    (docs / "hostile.txt").write_text(
        'A cat link http://example.invalid/frame"></iframe and www.example.com and '
        "me@example.com, an icon :material/home: and :red[red text] for the cat."
    )
    Indexer(TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3), IndexOptions()).sync(docs, idx)
    env = {**os.environ, "TPR_HOME": str(tmp_path / "home")}
    env.pop("TPR_INDEX", None)
    with running_app(["--index", str(idx)], env=env, timeout=60) as url:
        yield url


def test_the_project_config_keeps_the_ui_on_loopback(server):
    from tests.ui_server import listening_addresses

    port = int(server.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"127.0.0.1"}


def test_query_results_and_neighbours_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.ui_server import CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        box = page.get_by_label("Query")
        box.wait_for(timeout=60_000)
        box.fill("cat")
        box.press("Enter")
        page.get_by_text("cats.txt").first.wait_for(timeout=60_000)
        page.get_by_text("hostile.txt").first.wait_for(timeout=60_000)
        assert page.locator("strong", has_text="cat").count() >= 1  # highlighted term
        # Document text stays text: no link, icon or coloured span comes from it.
        body = page.locator('[data-testid="stMain"]')
        assert body.get_by_text("example.invalid/frame", exact=False).count() >= 1
        assert page.locator('a[href*="example"], a[href^="mailto"]').count() == 0
        assert body.locator("p a").count() == 0  # (the title's own anchor is not in a <p>)
        assert body.locator('span[role="img"]').count() == 0  # :material/home: as an icon
        assert body.get_by_text("Deploy", exact=True).count() == 0
        shot = tmp_path / "results.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        page.get_by_role("tab", name="Neighbours").click()
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
        browser.close()


def test_ask_tab_card_expander_filter_and_map_legend_in_a_real_browser(server):
    """The Ask tab against the fake OpenAI-compatible endpoint, a result card's expander, one
    filter, and the map's legend, clicked as a user would."""
    import threading
    from http.server import ThreadingHTTPServer

    from playwright.sync_api import sync_playwright

    from tests.test_ask import FakeLLM
    from tests.ui_server import CHROMIUM_ARGS

    llm = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    FakeLLM.seen, FakeLLM.mode = [], "stream"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            box = page.get_by_label("Query")
            box.wait_for(timeout=60_000)
            box.fill("cat")
            box.press("Enter")
            page.get_by_text("cats.txt").first.wait_for(timeout=60_000)
            # a card's expander shows the whole chunk
            page.get_by_text("Whole chunk and its neighbours").first.click()
            page.get_by_text("(this one)").first.wait_for(timeout=30_000)
            # one filter: only .txt files named dogs
            page.get_by_label("Path glob").fill("dogs*")
            page.get_by_label("Path glob").press("Enter")
            page.wait_for_timeout(2000)
            main = page.locator('[data-testid="stMain"]')
            assert main.locator("code", has_text="cats.txt").count() == 0
            assert main.locator("code", has_text="dogs.txt").count() >= 1
            # the map's legend
            page.get_by_role("tab", name="Map").click()
            page.get_by_text("neighbours").first.wait_for(timeout=30_000)
            # the Ask tab against the fake endpoint
            page.get_by_role("tab", name="Ask").click()
            endpoint = page.get_by_role("textbox", name="OpenAI-compatible endpoint")
            endpoint.fill(f"http://127.0.0.1:{llm.server_address[1]}/v1")
            endpoint.press("Enter")
            question = page.get_by_label("Question")
            question.fill("where did the cat sit")
            question.press("Enter")
            page.wait_for_timeout(1000)
            page.get_by_role("button", name="Ask").click()
            link = page.locator('a[href="#source-1"]')
            link.first.wait_for(timeout=60_000)
            assert "sat on the mat" in main.inner_text()
            assert page.locator("#source-1").count() == 1  # the card the link points at
            assert FakeLLM.seen and "The cat sat on the mat" in str(FakeLLM.seen[-1]["body"])
            browser.close()
    finally:
        llm.shutdown()
