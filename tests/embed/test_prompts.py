"""Prompt templates, their validation and the reference sentence pre-processing."""

from __future__ import annotations

import pytest

from retriever.embed.prompts import METHODS, parse_template, preprocess
from retriever.errors import TemplateError


def test_tp_template_splits_at_pst():
    t = parse_template(METHODS["prompteol"][0], tp=True)
    left, right, start, end = t.render("A cat.")
    assert left == "This sentence : "
    assert right == ' "A cat." means in one word:"'
    assert right[start:end] == "A cat."


def test_vanilla_is_the_same_prompt_without_pst():
    left, right, start, end = parse_template(METHODS["prompteol"][0], tp=False).render("A cat.")
    assert left == 'This sentence : "A cat." means in one word:"' and right == ""
    assert left[start:end] == "A cat."


@pytest.mark.parametrize(
    ("template", "tp", "match"),
    [
        ("no placeholder", False, "TEXT once"),
        ("TEXT, TEXT and TEXT", False, "found 3"),
        ("TEXT <PST> TEXT", True, "before the first TEXT"),
        ('Say "TEXT"', True, "needs a <PST>"),
        ("<PST> <PST> TEXT", True, "at most once"),
        ("TEXT <PST>", True, "before TEXT"),
    ],
)
def test_bad_templates(template, tp, match):
    with pytest.raises(TemplateError, match=match):
        parse_template(template, tp)


def test_every_method_parses_in_both_modes():
    for templates in METHODS.values():
        for t in templates:
            assert parse_template(t, True).tp and not parse_template(t, False).tp


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("A cat sits", "A cat sits."),
        ("A cat sits.", "A cat sits."),
        ('He said "hi"', "He said 'hi'"),
        ("Is it raining?", "Is it raining."),
        ("It's 'quoted'", "It's 'quoted'"),
    ],
)
def test_preprocess_matches_reference(raw, clean):
    assert preprocess(raw) == clean
