"""Screenshot of the UI on an index, for the README (headless Debian chromium via Playwright).

python scripts/ui_screenshot.py --index python-docs --query "how do I split a string on whitespace"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' app runner
from tests.ui_server import CHROMIUM_ARGS, running_app

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="python-docs")
    ap.add_argument("--query", default="how do I split a string on whitespace")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with running_app(["--index", args.index]) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1100})
        page.goto(url)
        box = page.get_by_label("Query")
        box.wait_for(timeout=180_000)
        box.fill(args.query)
        box.press("Enter")
        page.locator("strong").first.wait_for(timeout=180_000)
        page.wait_for_timeout(1500)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
