"""Sentence splitting for coverage.

A text is first cut at line breaks (so every Markdown list item, heading and paragraph line is its own unit), the
Markdown markers at the start of a line (``-``, ``*``, ``+``, ``1.``, ``1)``, ``#``, ``>``) and emphasis markers are
removed, and each line is then split into sentences with NLTK's Punkt algorithm. NLTK's trained Punkt data cannot
be downloaded here, so Punkt runs with default parameters plus a short list of common English abbreviations
(``e.g.``, ``i.e.``, ``Dr.``, ``etc.``, ...) that untrained Punkt would otherwise treat as sentence ends. Pieces
without any letter or digit (rules, stray punctuation, code fences) are dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_ABBREVIATIONS = (
    "e.g",
    "i.e",
    "etc",
    "vs",
    "dr",
    "mr",
    "mrs",
    "ms",
    "prof",
    "st",
    "jr",
    "sr",
    "no",
    "fig",
    "approx",
    "a.m",
    "p.m",
    "u.s",
    "u.k",
    "inc",
    "ltd",
    "co",
    "cf",
    "al",
    "min",
    "max",
    "sec",
    "dept",
    "est",
)
_LINE_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|#{1,6}|>)+\s+")
_EMPHASIS = re.compile(r"(\*\*|__|`+)")
_HAS_WORD = re.compile(r"\w", re.UNICODE)


@lru_cache(maxsize=1)
def _punkt() -> Any:
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(_ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (stripped, in order). Empty or whitespace-only text gives ``[]``."""
    out: list[str] = []
    if not text:
        return out
    tok = _punkt()
    for raw in text.splitlines():
        line = _LINE_MARKER.sub("", raw)
        line = _EMPHASIS.sub("", line).strip()
        if not _HAS_WORD.search(line):
            continue
        for sent in tok.tokenize(line):
            sent = sent.strip()
            if _HAS_WORD.search(sent):
                out.append(sent)
    return out
