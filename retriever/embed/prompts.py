"""Prompt templates for prompt-based sentence embeddings, and the <PST> placeholder.

A template is a string with the literal ``TEXT`` where the sentence goes and, for Token
Prepending (TP), exactly one ``<PST>`` placeholder right before it (Fu et al., 2025). The
vanilla variant of a template is the same string with ``<PST>`` (and one space after it) removed.

MetaEOL (Lei et al., 2024) embeds a text under several task prompts and averages the vectors,
so a *method* is a tuple of templates, not one.

Sentences are pre-processed as in the TP reference code (SimCSE/PromptEOL lineage): append a
period unless the text already ends in . ? " or ', turn double quotes into single quotes (the
template quotes the sentence with double quotes), and turn a trailing ? into a period.

Two strategies beyond single-placeholder TP live partly here:

* **Echo embeddings** (Springer et al., 2024, arXiv 2402.15449): a template holds ``TEXT`` twice,
  and mean pooling reads the *second* copy, whose tokens have seen the whole text once already
  (the ``echo-*`` methods). It doubles the tokens of every pass.
* **Hierarchical TP** (Ding et al., 2026, arXiv 2511.14868) keeps one ``<PST>`` in the template;
  :mod:`.batching` expands it into a global slot plus one slot per sentence block (the
  ``htp-*`` methods are the paper's retrieval prompts: bare passages, an instruction on queries).
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
    # Hierarchical TP's retrieval prompts: passages bare, an instruction on queries only.
    "htp-passage": (f"{PST} {TEXT}",),
    "htp-query": (f"Retrieve relevant documents: {PST} {TEXT}",),
    # Echo: the text twice; mean pooling over the second copy (the paper's wording).
    "echo-passage": (f'Rewrite the passage : {PST} "{TEXT}" , rewritten passage : "{TEXT}"',),
    "echo-query": (f'Rewrite the query : {PST} "{TEXT}" , rewritten query : "{TEXT}"',),
    # Late chunking's document prompt: the text once (each chunk pooled over its own span of
    # it, so only what precedes the text shapes a chunk; the tail is read by nobody).
    "late-passage": (f'This passage : {PST} "{TEXT}" means in one word:"',),
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
        post: text after (the last) ``TEXT``.
        tp: whether a ``<PST>`` slot sits between ``head`` and ``pre``.
        echo: text between the two copies of an echo template, or None (one copy).
    """

    head: str
    pre: str
    post: str
    tp: bool
    echo: str | None = None

    @property
    def copies(self) -> int:
        return 1 if self.echo is None else 2

    def render(self, text: str) -> tuple[str, str, int, int]:
        """Return (left, right, start, end): the prompt split at <PST> and the pooled span.

        ``left`` is tokenized with the tokenizer's special tokens (BOS), ``right`` without; the
        <PST> vector goes between them in TP mode. In vanilla mode ``left`` holds the whole prompt
        and ``right`` is empty. ``start``/``end`` are character offsets, in the string that holds
        it, of the sentence (of its second copy in an echo template).
        """
        body = text if self.echo is None else text + self.echo + text
        first = len(body) - len(text)  # where the pooled copy starts within body
        if self.tp:
            right = self.pre + body + self.post
            start = len(self.pre) + first
            return self.head, right, start, start + len(text)
        left = self.head + self.pre + body + self.post
        start = len(self.head) + len(self.pre) + first
        return left, "", start, start + len(text)


def parse_template(template: str, tp: bool) -> Template:
    """Validate a template string and split it for rendering.

    Args:
        template: contains ``TEXT`` once (or twice: an echo template, pooled over the second
            copy) and at most one ``<PST>``, before the first ``TEXT``.
        tp: with TP the template must contain ``<PST>``; without, it is removed.

    Raises:
        TemplateError: when the template is malformed, with what to change.
    """
    n_text = template.count(TEXT)
    if n_text not in (1, 2):
        raise TemplateError(
            f"a prompt template must contain the placeholder TEXT once (or twice for an echo "
            f"template; found {n_text}): "
            f'e.g. \'This sentence : <PST> "TEXT" means in one word:"\''
        )
    echo = None
    if n_text == 2:
        a = template.index(TEXT)
        b = template.index(TEXT, a + len(TEXT))
        echo = template[a + len(TEXT) : b]
        if PST in echo:
            raise TemplateError(f"{PST} must come before the first TEXT of an echo template")
        template = template[:b] + template[b + len(TEXT) :]  # one copy; render adds the other
        template = template[: a + len(TEXT)] + template[a + len(TEXT) + len(echo) :]
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
        return Template(template[:text_at], "", template[text_at + len(TEXT) :], False, echo)
    pst_at = template.index(PST)
    if pst_at > text_at:
        raise TemplateError(f"{PST} must come before TEXT in the template, not after it")
    head = template[:pst_at]
    pre = template[pst_at + len(PST) : text_at]
    post = template[text_at + len(TEXT) :]
    if not tp:
        # Vanilla = the same prompt without <PST>: drop the placeholder and one space after it.
        pre = pre[1:] if pre.startswith(" ") else pre
    return Template(head, pre, post, tp, echo)


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
