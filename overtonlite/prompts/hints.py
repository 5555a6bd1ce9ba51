"""Hints about the aligned answer for the test prompt ("lower-resolution semantic hints", paper-protocol.md §4.9).

Kinds:

* ``summary``: the chat model summarises its own sample 0 in 2-3 sentences from :func:`summarize_messages`
  (greedy decoding; the generation itself happens in the ICL experiment, which caches it in the run directory);
* ``extractive``: the most central sentences of chat sample 0 by sentence-embedding centrality (sentences cut
  by :func:`overtonlite.metrics.sentences.split_sentences`, the coverage splitter, so list markers are dropped);
* ``keywords``: the top TF-IDF terms of chat sample 0 against the other prompts' chat sample 0;
* ``none``: no hint.

Extractive hints copy words from the target, so they inflate lexical similarity; compare them on the semantic
measures.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from overtonlite.metrics.sentences import split_sentences

HINT_KINDS = ("none", "summary", "extractive", "keywords")

SUMMARIZE_INSTRUCTION = (
    "Summarize the answer above in two or three sentences. Keep the main points someone would need to write a "
    "similar answer, in your own words, without quoting it."
)

_STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each even few for from further get gets got had has
    have having he her here hers herself him himself his how i if in into is it its itself just like make many may
    me might more most much must my myself no nor not now of off often on once one only or other our ours
    ourselves out over own really same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up use used using very want was way we well were what
    when where which while who whom why will with would you your yours yourself yourselves can't don't it's i'm
    you're that's there's isn't aren't doesn't""".split()
)
_TERM = re.compile(r"[a-z][a-z'\-]*[a-z]|[a-z]")


def summarize_messages(query: str, answer: str) -> list[dict[str, str]]:
    """The chat messages that ask the chat model for a 2-3 sentence summary of its own answer."""
    content = f"Question:\n{query.strip()}\n\nAnswer:\n{answer.strip()}\n\n{SUMMARIZE_INSTRUCTION}"
    return [{"role": "user", "content": content}]


def extractive_hint(text: str, embedder: Any, *, max_sentences: int = 2) -> str:
    """The ``max_sentences`` most central sentences of ``text``, in their original order.

    Centrality of a sentence = its mean cosine to the other sentences (embedding from ``embedder.embed``). Texts
    with at most ``max_sentences`` sentences are returned whole (stripped).
    """
    sentences = split_sentences(text)
    if len(sentences) <= max_sentences:
        return " ".join(sentences)
    emb = np.asarray(embedder.embed(sentences), dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.where(norms == 0, 1.0, norms)
    sims = emb @ emb.T
    np.fill_diagonal(sims, 0.0)
    centrality = sims.sum(axis=1) / (len(sentences) - 1)
    top = sorted(np.argsort(-centrality, kind="stable")[:max_sentences].tolist())
    return " ".join(sentences[i] for i in top)


def terms(text: str) -> list[str]:
    """Lower-cased word terms without stop words and one-letter tokens (the TF-IDF vocabulary)."""
    return [t for t in _TERM.findall(text.lower()) if len(t) > 1 and t not in _STOP_WORDS]


def tfidf_keywords(text: str, corpus: Sequence[str], *, top: int = 8) -> list[str]:
    """The ``top`` terms of ``text`` by TF-IDF, with document frequencies from ``corpus`` (which should hold the
    other documents; ``text`` itself is counted once more). Ties break alphabetically."""
    counts = Counter(terms(text))
    if not counts:
        return []
    docs = [set(terms(d)) for d in corpus] + [set(counts)]
    n_docs = len(docs)
    scores: dict[str, float] = {}
    for term, tf in counts.items():
        df = sum(1 for d in docs if term in d)
        scores[term] = tf * (math.log((1 + n_docs) / (1 + df)) + 1.0)
    ranked = sorted(scores, key=lambda t: (-scores[t], t))
    return ranked[:top]


def keyword_hint(text: str, corpus: Sequence[str], *, top: int = 8) -> str:
    """A hint line listing the top TF-IDF terms of ``text`` (see :func:`tfidf_keywords`)."""
    words = tfidf_keywords(text, corpus, top=top)
    return "Key terms: " + ", ".join(words) if words else "Key terms: (none)"
