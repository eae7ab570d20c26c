"""The README's pictures are of the current app on the demo index: newer in git than every UI
module, every tab captured, and the index card they show the demo's (scripts/ui_screenshot.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from retriever import EmbedderConfig

ROOT = Path(__file__).resolve().parents[1]
TABS = ("ask", "neighbours", "near-duplicates", "tp-vs-vanilla", "map", "manage")


def _committed_at(path: str) -> int:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%ct", "--", path],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return int(out or 0)


def test_the_pictures_are_newer_than_the_app():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    shot = _committed_at("docs/screenshot.png")
    for module in sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "ui").glob("*.py")):
        assert shot >= _committed_at(module), (
            f"{module} changed after docs/screenshot.png: run `python scripts/ui_screenshot.py`"
        )
    for tab in TABS:
        assert _committed_at(f"docs/screenshots/{tab}.png") >= _committed_at("ui/app.py"), tab


def test_the_pictures_show_the_demo_index():
    card = (ROOT / "docs" / "screenshots" / "card.txt").read_text()
    readme = (ROOT / "README.md").read_text()
    chunks = re.search(r"chunks: (\d+)", card).group(1)
    default = EmbedderConfig.for_retrieval()  # the demo index is built with the default
    assert "model: gemma3-270m" in card and f"prompt: {default.prompt} " in card
    caption = re.search(r"\*The demo index \(([^)]*)\)", readme).group(1)
    assert f"{int(chunks):,} chunks" in caption or f"{chunks} chunks" in caption, caption
    for tab in TABS:
        assert (ROOT / "docs" / "screenshots" / f"{tab}.png").stat().st_size > 10_000, tab
