"""Prompt builders for base models: zero-shot Query/Answer, URIAL-style in-context alignment, example selection
and hints. Rendering is pure string work; nothing here loads a model."""

from overtonlite.prompts.examples import EXAMPLE_QUERIES, HUMAN_EXAMPLES, INSTRUCTIONS, Example
from overtonlite.prompts.hints import (
    HINT_KINDS,
    extractive_hint,
    keyword_hint,
    split_sentences,
    summarize_messages,
    tfidf_keywords,
)
from overtonlite.prompts.select import SELECTIONS, knn_neighbours, random_neighbours
from overtonlite.prompts.urial import STOP, cap_words, render_base, render_urial, sanitize

__all__ = [
    "EXAMPLE_QUERIES",
    "HINT_KINDS",
    "HUMAN_EXAMPLES",
    "INSTRUCTIONS",
    "SELECTIONS",
    "STOP",
    "Example",
    "cap_words",
    "extractive_hint",
    "keyword_hint",
    "knn_neighbours",
    "random_neighbours",
    "render_base",
    "render_urial",
    "sanitize",
    "split_sentences",
    "summarize_messages",
    "tfidf_keywords",
]
