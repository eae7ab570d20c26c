"""Prompt templates for prompt-based sentence embeddings, and the <PST> placeholder.

A template is a string with the literal ``TEXT`` where the sentence goes and, for Token
Prepending (TP), exactly one ``<PST>`` placeholder right before it (Fu et al., 2025). The
vanilla variant of a template is the same string with ``<PST>`` (and one space after it) removed.

MetaEOL (Lei et al., 2024) embeds a text under several task prompts and averages the vectors,
so a *method* is a tuple of templates, not one.

Sentences are pre-processed as in the TP reference code (SimCSE/PromptEOL lineage): append a
period unless the text already ends in . ? " or ', turn double quotes into single quotes (the
template quotes the sentence with double quotes), and turn a trailing ? into a period.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TemplateError

PST = "<PST>"
TEXT = "TEXT"

_EOL_TAIL = f'{PST} "{TEXT}" means in one word:"'

METHODS: dict[str, tuple[str, ...]] = {
    # Retrieval-shaped pairs (asymmetric search: documents with the *-passage prompt, queries
    # with the matching *-query prompt; see EmbedderConfig.query_prompt). "topic" asks what the
    # text is about; "promptreps" is the PromptReps wording (Zhuang et al., 2024) in TP's shape.
    "topic-passage": (f'This passage : {PST} "{TEXT}" is about, in one word:"',),
    "topic-query": (
        f'This search query : {PST} "{TEXT}" looks for a passage about, in one word:"',
    ),
    "promptreps-passage": (
        f'Passage : {PST} "{TEXT}" Use one word to represent the passage in a retrieval task. '
        'Make sure your word is in lowercase. The word is:"',
    ),
    "promptreps-query": (
        f'Query : {PST} "{TEXT}" Use one word to represent the query in a retrieval task. '
        'Make sure your word is in lowercase. The word is:"',
    ),
    "prompteol": (f"This sentence : {_EOL_TAIL}",),
    "cot": (f"After thinking step by step , this sentence : {_EOL_TAIL}",),
    "ke": (
        "The essence of a sentence is often captured by its main subjects and actions, while "
        "descriptive terms provide additional but less central details. With this in mind , "
        f"this sentence : {_EOL_TAIL}",
    ),
}

# MetaEOL: (task description, task phrase). Each becomes
# '<description> this sentence : <PST> "TEXT" <phrase> in one word:"'.
_META_TASKS = (
    (
        "In this task, you're given a sentence. Your task is to categorize it into a broad topic "
        "such as education, technology, health, business, environment, politics or culture.",
        "belongs to the topic",
    ),
    (
        "In this task, you're given a sentence. Your task is to name the main subject it "
        "describes.",
        "is about",
    ),
    (
        "In this task, you're given a sentence. Your task is to judge the sentiment it expresses: "
        "positive, negative or neutral.",
        "expresses the sentiment",
    ),
    (
        "In this task, you're given a sentence. Your task is to identify the speaker's intent, "
        "such as informing, asking, requesting or complaining.",
        "has the intent",
    ),
    (
        "In this task, you're given a sentence. Your task is to summarize its meaning as briefly "
        "as possible.",
        "can be summarized",
    ),
    (
        "In this task, you're given a sentence. Your task is to find the main action or event it "
        "describes.",
        "describes the action",
    ),
    (
        "In this task, you're given a sentence. Your task is to choose the keyword a search "
        "engine should index it under.",
        "is indexed under the keyword",
    ),
    (
        "In this task, you're given a sentence. Your task is to paraphrase it while keeping its "
        "meaning.",
        "means",
    ),
)
METHODS["metaeol"] = tuple(
    f'{desc} this sentence : {PST} "{TEXT}" {phrase} in one word:"' for desc, phrase in _META_TASKS
)


@dataclass(frozen=True)
class Template:
    """A validated template split around the sentence.

    Attributes:
        head: text before ``<PST>`` (TP) or before the part that precedes ``TEXT`` (vanilla).
        pre: text between ``<PST>`` and ``TEXT`` (TP); in vanilla it is glued onto ``head``.
        post: text after ``TEXT``.
        tp: whether a ``<PST>`` slot sits between ``head`` and ``pre``.
    """

    head: str
    pre: str
    post: str
    tp: bool

    def render(self, text: str) -> tuple[str, str, int, int]:
        """Return (left, right, start, end): the prompt split at <PST> and the sentence span.

        ``left`` is tokenized with the tokenizer's special tokens (BOS), ``right`` without; the
        <PST> vector goes between them in TP mode. In vanilla mode ``left`` holds the whole prompt
        and ``right`` is empty. ``start``/``end`` are character offsets of the sentence in the
        string that holds it.
        """
        if self.tp:
            right = self.pre + text + self.post
            return self.head, right, len(self.pre), len(self.pre) + len(text)
        left = self.head + self.pre + text + self.post
        start = len(self.head) + len(self.pre)
        return left, "", start, start + len(text)


def parse_template(template: str, tp: bool) -> Template:
    """Validate a template string and split it for rendering.

    Args:
        template: contains ``TEXT`` exactly once and at most one ``<PST>``, before ``TEXT``.
        tp: with TP the template must contain ``<PST>``; without, it is removed.

    Raises:
        TemplateError: when the template is malformed, with what to change.
    """
    n_text = template.count(TEXT)
    if n_text != 1:
        raise TemplateError(
            f"a prompt template must contain the placeholder TEXT exactly once (found {n_text}): "
            f'e.g. \'This sentence : <PST> "TEXT" means in one word:"\''
        )
    n_pst = template.count(PST)
    if n_pst > 1:
        raise TemplateError(f"a prompt template may contain {PST} at most once (found {n_pst})")
    text_at = template.index(TEXT)
    if n_pst == 0:
        if tp:
            raise TemplateError(
                f"Token Prepending needs a {PST} placeholder right before the sentence, e.g. "
                f'\'This sentence : {PST} "TEXT" means in one word:"\'; add it or turn TP off'
            )
        return Template(template[:text_at], "", template[text_at + len(TEXT) :], tp=False)
    pst_at = template.index(PST)
    if pst_at > text_at:
        raise TemplateError(f"{PST} must come before TEXT in the template, not after it")
    head = template[:pst_at]
    pre = template[pst_at + len(PST) : text_at]
    post = template[text_at + len(TEXT) :]
    if not tp:
        # Vanilla = the same prompt without <PST>: drop the placeholder and one space after it.
        pre = pre[1:] if pre.startswith(" ") else pre
    return Template(head, pre, post, tp=tp)


def method_templates(method: str) -> tuple[str, ...]:
    """Templates of a named prompt method.

    Raises:
        TemplateError: for an unknown method name.
    """
    try:
        return METHODS[method.lower()]
    except KeyError:
        raise TemplateError(
            f"unknown prompt method {method!r}; choose one of {', '.join(METHODS)} "
            "or pass a custom template containing TEXT"
        ) from None


def preprocess(sentence: str) -> str:
    """The TP reference code's sentence clean-up (see module docstring)."""
    s = sentence.strip()
    if s and s[-1] not in ".?\"'":
        s += "."
    s = s.replace('"', "'")
    if s.endswith("?"):
        s = s[:-1] + "."
    return s
