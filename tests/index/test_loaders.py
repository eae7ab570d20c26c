"""Loaders and the folder walk: every supported kind, every kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retriever.index.loaders import SkipFile, load, walk

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_text_markdown_rst_and_source(tmp_path):
    for name, body in {
        "a.txt": "plain",
        "b.md": "# Title\n\ntext",
        "c.rst": "Title\n=====",
        "d.py": "def f():\n    return 1",
        "noext": "just text",
    }.items():
        (tmp_path / name).write_text(body)
        assert load(tmp_path / name).text == body


def test_html_is_parsed_not_regexed(tmp_path):
    p = tmp_path / "page.html"
    p.write_text(
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head>"
        "<body><h1>Head &amp; line</h1><p>First <b>bold</b> para.</p></body></html>"
    )
    text = load(p).text
    assert "Head & line" in text and "First" in text and "bold" in text
    assert "alert" not in text and "color" not in text and "<" not in text


def test_pdf_keeps_pages():
    doc = load(FIXTURES / "two_pages.pdf")
    assert "Token prepending" in doc.text and "FAISS" in doc.text
    assert doc.page_at(0) == 1 and doc.page_at(doc.text.index("FAISS")) == 2


def test_encrypted_broken_and_empty_pdfs_are_skipped(tmp_path):
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter()
    for page in PdfReader(FIXTURES / "two_pages.pdf").pages:
        w.add_page(page)
    w.encrypt("secret")
    with open(tmp_path / "enc.pdf", "wb") as f:
        w.write(f)
    with pytest.raises(SkipFile, match="encrypted"):
        load(tmp_path / "enc.pdf")
    (tmp_path / "broken.pdf").write_bytes((FIXTURES / "two_pages.pdf").read_bytes()[:120])
    with pytest.raises(SkipFile, match="PDF"):
        load(tmp_path / "broken.pdf")


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"   \n\n  ", "empty"),
        ("bin.dat", b"\x00\x01\x02binary", "binary"),
        ("latin.txt", "café ".encode("latin-1") * 50, "not UTF-8"),
        ("img.png", b"\x89PNG....", "binary format"),
    ],
)
def test_bad_inputs_are_skipped_with_reason(tmp_path, name, data, reason):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(SkipFile, match=reason):
        load(tmp_path / name)


def test_a_stray_bad_byte_is_tolerated(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"mostly fine text " * 20 + b"\xff")
    assert load(tmp_path / "x.txt").text.startswith("mostly fine")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_permission_denied(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text("no")
    p.chmod(0)
    with pytest.raises(SkipFile, match="permission denied"):
        load(p)


def test_walk_skips_hidden_vcs_venv_and_outside_symlinks(tmp_path):
    root = tmp_path / "root"
    for rel in [
        "a.txt",
        "sub/b.md",
        ".hidden.txt",
        ".git/config",
        "node_modules/x.js",
        "__pycache__/m.pyc",
        "env/lib.py",
        "sub/.secret/c.txt",
        "sub/keep.py",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "env" / "pyvenv.cfg").write_text("home = /usr")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (root / "link_out.txt").symlink_to(outside)
    (root / "link_in.txt").symlink_to(root / "a.txt")
    (root / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    found = [f.rel for f in walk(root)]
    assert found == ["a.txt", "link_in.txt", "sub/b.md", "sub/keep.py"]
    assert [f.rel for f in walk(root, include=["*.md"])] == ["sub/b.md"]
    assert [f.rel for f in walk(root, exclude=["sub/*"])] == ["a.txt", "link_in.txt"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_text_not_binary(tmp_path, codec):
    text = "Grüße aus Köln: a note in UTF-16 without a byte-order mark.\nSecond line."
    (tmp_path / "note.txt").write_bytes(text.encode(codec))
    assert load(tmp_path / "note.txt").text == text


def test_no_nul_ever_reaches_the_text(tmp_path):
    # NULs after the first 8 KB: a few are dropped, many make the file binary.
    (tmp_path / "padded.log").write_bytes(b"log line\n" * 1000 + b"\x00tail line\n")
    text = load(tmp_path / "padded.log").text
    assert "\x00" not in text and text.endswith("tail line\n")
    (tmp_path / "blob.txt").write_bytes(b"text " * 2000 + b"\x00\x01" * 500)
    with pytest.raises(SkipFile, match="binary"):
        load(tmp_path / "blob.txt")
    (tmp_path / "bom16.txt").write_bytes("a\x00b".encode("utf-16"))
    assert load(tmp_path / "bom16.txt").text == "ab"


def test_walk_reports_what_it_passes_over_and_never_opens_a_fifo(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("x")
    os.mkfifo(root / "fifo.txt")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    (root / "gone.txt").symlink_to(root / "nowhere.txt")
    skipped = []
    found = [f.rel for f in walk(root, on_skip=lambda f, why: skipped.append((f.rel, why)))]
    assert found == ["a.txt"]
    assert sorted(skipped) == [
        ("fifo.txt", "not a regular file"),
        ("gone.txt", "broken symlink (target missing)"),
        ("loop.txt", "symlink loop"),
    ]
    with pytest.raises(SkipFile, match="not a regular file"):
        load(root / "fifo.txt")  # returns at once: opened non-blocking, checked, refused


def test_asset_files_are_skipped_with_their_reason_unless_included(tmp_path, tokenizer):
    """SVGs, source maps, lock files and minified code are noise to a search (issue 26, item
    4): skipped by default, listed with the reason and the --include that brings them back."""
    from retriever.index.indexer import Indexer, IndexOptions
    from retriever.index.store import Store

    from ..fakes import FakeEmbedder

    root = tmp_path / "docs"
    (root / "static").mkdir(parents=True)
    (root / "guide.md").write_text("# Guide\n\nA cat sat on the road.")
    (root / "static" / "logo.svg").write_text("<svg><text>cat cat cat</text></svg>")
    (root / "static" / "app.min.js").write_text("var cat=1;")
    (root / "static" / "app.js.map").write_text('{"sources": ["cat.js"]}')
    (root / "package-lock.json").write_text('{"name": "cat"}')
    (root / "sitemap.md").write_text("A map of the cat site.")  # a document, not an asset
    fake = FakeEmbedder(tokenizer)
    r = Indexer(fake).sync(root, tmp_path / "idx")
    skipped = dict(r.skipped)
    assert set(skipped) == {"static/logo.svg", "static/app.min.js", "static/app.js.map",
                            "package-lock.json"}  # fmt: skip
    assert (
        "SVG image" in skipped["static/logo.svg"]
        and "--include '*.svg'" in skipped["static/logo.svg"]
    )
    assert r.added == 2
    with Store.open(tmp_path / "idx") as store:
        rows = {f["path"]: f for f in store.rows.list_files(skipped_only=True)}
    assert "lock file" in rows["package-lock.json"]["reason"]
    Indexer(fake, IndexOptions(include=["*.md", "*.svg"])).sync(root, tmp_path / "idx")
    with Store.open(tmp_path / "idx") as store:  # the logo, asked for
        assert store.rows.file_by_path("static/logo.svg")["status"] == "indexed"
