"""End to end: `streamlit run ui/app.py` on localhost, driven by headless Chromium.

Uses Debian's chromium (installed by .ci/run) through Playwright with ``executable_path``, so
no browser is downloaded at test time. Saves a screenshot of the results page.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, tiny_model_dir):
    from retriever import TPEmbedder
    from retriever.indexer import Indexer, IndexOptions

    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "cats.txt").write_text("The cat sat on the mat. Cats purr.")
    (docs / "dogs.txt").write_text("Dogs chase cars down the road.")
    (docs / "birds.txt").write_text("Birds sing in the trees at dawn.")
    Indexer(TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3), IndexOptions()).sync(docs, idx)
    port = free_port()
    env = {**os.environ, "TPR_HOME": str(tmp_path / "home")}
    env.pop("TPR_INDEX", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "ui" / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--",
            "--index",
            str(idx),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_query_results_and_neighbours_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        box = page.get_by_label("Query")
        box.wait_for(timeout=60_000)
        box.fill("cat")
        box.press("Enter")
        page.get_by_text("cats.txt").first.wait_for(timeout=60_000)
        assert page.locator("strong", has_text="cat").count() >= 1  # highlighted term
        shot = tmp_path / "results.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        page.get_by_role("tab", name="Neighbours").click()
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
        browser.close()
