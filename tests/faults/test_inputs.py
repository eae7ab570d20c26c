"""Issue 23, B (one bad input never stops the folder) and F25 (no chunk inside its neighbour,
no mergeable small chunk). Each bad file is made here as a real file."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from retriever.index.chunking import Chunker
from retriever.index.indexer import Indexer
from retriever.index.loaders import SkipFile, load
from retriever.index.store import Store

from ..fakes import FakeEmbedder
from ..index.test_formats import S, W, docx, zipped
from .helpers import DOCS, folder, run


@pytest.fixture
def fake(tokenizer):
    return FakeEmbedder(tokenizer)


# -- B4: malformed documents ------------------------------------------------------------------


def corrupt_deflate(path):
    body = "".join(f"<w:p><w:r><w:t>cat number {i}</w:t></w:r></w:p>" for i in range(300))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", f"<w:document {W}><w:body>{body}</w:body></w:document>")
    data = bytearray(path.read_bytes())
    start = data.index(b"word/document.xml") + len("word/document.xml")  # local header's name
    for i in range(start + 20, start + 60):  # into the deflate stream
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def malformed(root):
    (root / "cells.ipynb").write_text(json.dumps({"cells": ["print(1)", 7, None]}))
    zipped(root / "shared.xlsx", {
        "xl/workbook.xml": f'<workbook {S}><sheets><sheet name="A"/></sheets></workbook>',
        "xl/sharedStrings.xml": f"<sst {S}><si><t>cat</t></si></sst>",
        "xl/worksheets/sheet1.xml": f'<worksheet {S}><sheetData><row><c t="s"><v>99</v></c>'
        '<c t="s"><v/></c><c><v>3</v></c></row></sheetData></worksheet>',
    })  # fmt: skip
    corrupt_deflate(root / "deflate.docx")
    zipped(root / "norootfile.epub", {"META-INF/container.xml": "<container><rootfiles/>"
                                      "</container>"})  # fmt: skip


def test_malformed_documents_are_skipped_with_a_reason_and_the_folder_indexed(tmp_path, fake):
    docs = folder(tmp_path / "docs")
    malformed(docs)
    idx = tmp_path / "idx"
    r = Indexer(fake).sync(docs, idx)
    skipped = dict(r.skipped)
    assert {"cells.ipynb", "deflate.docx", "norootfile.epub"} <= set(skipped)
    assert "empty" in skipped["cells.ipynb"]  # no cell was an object
    assert "unreadable DOCX" in skipped["deflate.docx"]
    assert "rootfile" in skipped["norootfile.epub"]
    with Store.open(idx) as store:
        rows = {f["path"]: f for f in store.rows.list_files()}
    # The sheet's bad shared-string references read as empty cells, as spreadsheets show them.
    assert rows["shared.xlsx"]["status"] == "indexed"
    assert all(rows[p]["status"] == "indexed" for p in DOCS)
    listed = run("files", "--index", idx, "--skipped")
    assert listed.exit_code == 0 and "deflate.docx  (skipped: unreadable DOCX" in listed.output


def test_a_loader_error_nobody_foresaw_skips_only_that_file(tmp_path, fake, monkeypatch):
    import retriever.index.loaders as loaders

    def broken_html(data):
        raise AttributeError("'NoneType' object has no attribute 'text'")

    monkeypatch.setattr(loaders, "_html", broken_html)
    docs = folder(tmp_path / "docs", {**DOCS, "page.html": "<p>cat</p>"})
    r = Indexer(fake).sync(docs, tmp_path / "idx")
    assert r.added == len(DOCS)
    assert dict(r.skipped)["page.html"].startswith("unreadable (AttributeError")


# -- B5: a file name that is not UTF-8 --------------------------------------------------------


def test_a_latin1_file_name_is_indexed_under_an_escaped_name(tmp_path, fake):
    docs = folder(tmp_path / "docs")
    raw = os.path.join(os.fsencode(docs), b"caf\xe9 menu.txt")
    with open(raw, "wb") as f:
        f.write(b"a cat in the cafe")
    idx = tmp_path / "idx"
    r = Indexer(fake).sync(docs, idx)
    assert r.added == len(DOCS) + 1 and not r.skipped
    with Store.open(idx) as store:
        row = store.rows.file_by_path("caf\\xe9 menu.txt")
    assert row is not None and row["status"] == "indexed"
    again = Indexer(fake).sync(docs, idx)
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(DOCS) + 1)
    listed = run("files", "--index", idx)
    assert listed.exit_code == 0 and "caf\\xe9 menu.txt  (1 chunks)" in listed.output
    os.remove(raw)
    assert Indexer(fake).sync(docs, idx).removed == 1


# -- B6: ignore-file lines git itself ignores ------------------------------------------------


def test_bad_ignore_lines_are_ignored_as_git_does_and_said_once(tmp_path, fake, caplog):
    docs = folder(tmp_path / "docs", {**DOCS, "debug.log": "log", "z.txt": "a cat"})
    (docs / ".gitignore").write_text("[z-a].txt\n!\ntrailing\\\n*.log\n")
    idx = tmp_path / "idx"
    with caplog.at_level(logging.WARNING, logger="retriever"):
        r = Indexer(fake).sync(docs, idx)
        Indexer(fake).sync(docs, idx)
    assert r.added == len(DOCS) + 1  # z.txt kept, debug.log still ignored
    with Store.open(idx) as store:
        assert store.rows.file_by_path("debug.log") is None
    said = [m for m in caplog.messages if "no valid pattern" in m]
    assert len(said) == 1 and "'[z-a].txt'" in said[0] and "'!'" in said[0]


# -- B7: a quiet zip bomb ---------------------------------------------------------------------


def bomb(path, megabytes: int):
    """A DOCX whose one XML member inflates to ``megabytes`` MB of paragraphs (about 0.3% of
    that on disk)."""
    para = "<w:p><w:r><w:t>" + "cat " * 250 + "</w:t></w:r></w:p>"
    n = megabytes * 2**20 // len(para)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("word/document.xml", "w") as f,
    ):
        f.write(f"<w:document {W}><w:body>".encode())
        block = (para * 1000).encode()
        for _ in range(n // 1000):
            f.write(block)
        f.write(b"</w:body></w:document>")
    return path


@pytest.mark.parametrize("megabytes", [60, 190])
def test_a_quiet_zip_bomb_is_skipped_quickly_in_bounded_memory(tmp_path, megabytes):
    path = bomb(tmp_path / "bomb.docx", megabytes)
    assert path.stat().st_size < 2 * 2**20
    script = textwrap.dedent(f"""
        import time
        from retriever.index.loaders import SkipFile, load
        t = time.perf_counter()
        try:
            load(__import__("pathlib").Path({str(path)!r}))
            print("LOADED")
        except SkipFile as e:
            print("SKIPPED", e)
        # VmHWM: this program's own peak (ru_maxrss would carry the forking parent's over exec)
        status = open("/proc/self/status").read()
        peak = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")][0]
        print(time.perf_counter() - t, peak)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120).stdout.split("\n")  # fmt: skip
    assert out[0].startswith("SKIPPED"), out
    seconds, peak_kib = out[1].split()
    assert float(seconds) < 30 and int(peak_kib) < 1024 * 1024, out  # < 1 GiB in all


def test_an_archive_that_lies_about_its_size_is_read_only_as_far_as_it_inflates(tmp_path):
    path = bomb(tmp_path / "liar.docx", 20)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("word/document.xml")
    real = info.file_size.to_bytes(4, "little")
    data = data.replace(real, (1000).to_bytes(4, "little"))  # local and central headers
    path.write_bytes(bytes(data))
    t = time.perf_counter()
    with pytest.raises(SkipFile):
        load(path)
    assert time.perf_counter() - t < 10


def test_the_text_taken_from_an_archive_is_held_to_the_size_limit(tmp_path):
    path = docx(tmp_path / "long.docx", ["a cat on a mat " * 100] * 20)
    assert len(load(path).text) > 20_000
    with pytest.raises(SkipFile, match="longer than"):
        load(path, max_bytes=20_000)


# -- F25: no chunk inside its neighbour, no mergeable small chunk ------------------------------


def random_texts(n: int, seed: int = 0):
    rng = random.Random(seed)
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "while",
        "dog",
        "slept",
        "by",
        "door",
        "token",
        "sees",
        "whole",
        "sentence",
    ]

    def sentence(k):
        return " ".join(rng.choice(words) for _ in range(k)).capitalize() + "."

    for _ in range(n):
        paras = [
            " ".join(sentence(rng.choice([3, 5, 8, 20, 40, 70])) for _ in range(rng.randint(1, 5)))
            for _ in range(rng.randint(1, 6))
        ]
        yield "\n\n".join(paras)


def test_no_chunk_lies_inside_its_neighbour_and_no_small_chunk_could_merge(tokenizer):
    size, overlap = 64, 16
    chunker = Chunker(tokenizer, size, overlap)

    def tokens(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    contained, mergeable, total = [], [], 0
    for text in random_texts(200):
        chunks = chunker.split(text)
        total += len(chunks)
        for a, b in itertools.pairwise(chunks):
            if (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end):
                contained.append((a.start, a.end, b.start, b.end))
        for i, c in enumerate(chunks):
            if c.tokens >= size // 4 or len(chunks) == 1:
                continue
            for j in (i - 1, i + 1):
                if 0 <= j < len(chunks):
                    n = chunks[j]
                    union = text[min(c.start, n.start) : max(c.end, n.end)]
                    if tokens(union) <= size - 4:  # fits with room to spare
                        mergeable.append((c.start, c.end))
    assert total > 500
    assert not contained, contained[:5]
    assert not mergeable, mergeable[:5]
