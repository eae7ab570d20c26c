"""Screenshots of every tab of the UI on an index, for the README (headless Debian chromium via
Playwright), and the index card they show (``docs/screenshots/card.txt``: a test checks that it
is the demo index's and that the pictures are newer than the app).

python scripts/ui_screenshot.py --index python-docs --query "how do I split a string on whitespace"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' app runner
from tests.ui_server import CHROMIUM_ARGS, running_app

ROOT = Path(__file__).resolve().parents[1]
WAIT = 300_000  # ms: the default model loads and answers on a slow CPU
# tab -> (what to do in it, what to wait for)
TABS = {
    "Ask": ("ask", "h3"),
    "Neighbours": (None, "[data-testid='stDataFrame']"),
    "Near-duplicates": ("Find near-duplicates", "[data-testid='stDataFrame']"),
    "TP vs vanilla": ("Compare", "[data-testid='stDataFrame']"),
    "Map": (None, "canvas, svg.marks"),
    "Manage": (None, "[data-testid='stAlert'], [data-testid='stText']"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="python-docs")
    ap.add_argument("--query", default="how do I split a string on whitespace")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    shots = args.out / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with running_app(["--index", args.index]) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1100})
        page.goto(url)
        box = page.get_by_label("Query")
        box.wait_for(timeout=WAIT)
        box.fill(args.query)
        box.press("Enter")
        page.locator("strong").first.wait_for(timeout=WAIT)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(args.out / "screenshot.png"))
        card = page.locator("[data-testid='stSidebar'] [data-testid='stText']").first.inner_text()
        (shots / "card.txt").write_text(card + "\n")
        for tab, (action, ready) in TABS.items():
            page.get_by_role("tab", name=tab).click()
            panel = page.locator("[role='tabpanel']:visible")
            if action == "ask":
                question = page.get_by_label("Question")
                question.fill(args.query)
                question.press("Enter")
                page.wait_for_timeout(500)
                panel.get_by_role("button", name="Ask").click()
            elif action:
                page.wait_for_timeout(1000)  # the tab's content is drawn
                button = panel.get_by_role("button", name=action)
                if button.count():
                    button.first.click()
                else:  # an index without TP: the tab says why there is nothing to compare
                    ready = "[data-testid='stAlert']"
            panel.locator(ready).first.wait_for(timeout=WAIT)
            page.wait_for_timeout(1500)
            name = tab.lower().replace(" ", "-")
            page.screenshot(path=str(shots / f"{name}.png"))
            print(f"saved {shots / name}.png", flush=True)
        browser.close()
    print(f"saved {args.out / 'screenshot.png'} and {shots}")


if __name__ == "__main__":
    main()
