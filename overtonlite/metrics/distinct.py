"""distinct@k: how many genuinely different answers a group of k samples contains.

The samples are partitioned into equivalence classes greedily, in sample order (the NoveltyBench procedure): each
new answer is compared with the *first member* (the representative) of every existing class, in the order the
classes were opened, and joins the first class whose representative it matches; otherwise it opens a new class.
distinct@k is the number of classes (1 = every answer is the same answer, k = all different). The test is
``same(representative, new) -> bool`` and is pluggable:

* :func:`cosine_test` -- the cosine of the two answers' sentence embeddings is at least a threshold. The default,
  :data:`COSINE_THRESHOLD`, was calibrated on the authors' LIMA-OE data with the default embedder (see below).
* :func:`lexical_test` -- ROUGE-1 F (unigram overlap of :func:`overtonlite.metrics.lexsuite.rouge_tokens`
  tokens) is at least a threshold, default :data:`ROUGE1_THRESHOLD`, calibrated on the same data.
* any callable ``(a, b) -> bool``, e.g. an LLM judge asked "do these two answers say the same thing?".

Identical texts are always in the same class (the test is not called for them), so an empty answer joins an
earlier empty answer and nothing else (with the cosine test it has no vector).

Calibration (``benchmarks/distinct_calibration.py``, all-MiniLM-L6-v2, LIMA-OE data of the paper's authors).
A new answer should join a class when it adds little that the class's representative does not already say. The
authors' GPT-4 "missing information" judgments label exactly that for 250 (llama-2-chat sample 0, llama-2-base
sample) pairs: score 1-2 = the base answer adds little or nothing to the chat answer, 3-5 = it adds a fair amount
or more. The cosine threshold is the value that best separates the two label groups: 0.667 (maximum balanced accuracy,
0.68), rounded to :data:`COSINE_THRESHOLD` = 0.67; the cosine of two answers to different prompts exceeds it in
0.2% of random pairs (99th percentile 0.48). ROUGE-1 F barely separates the labels (balanced accuracy 0.54) and its
label-optimal value (0.28) merges 10% of answers to different prompts, so :data:`ROUGE1_THRESHOLD` = 0.38 is the
99th percentile of cross-prompt ROUGE-1 F instead. At these thresholds the mean distinct@5 on LIMA-OE is 3.44
(llama-2-base), 2.42 (mistral base), 1.16 (llama-2-chat), 1.10 (gpt-3.5-turbo) with the cosine test, and 4.08,
2.86, 1.08, 1.10 with the ROUGE-1 test. The cosine threshold belongs to all-MiniLM-L6-v2; another embedder needs
its own run of the script.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "COSINE_THRESHOLD",
    "ROUGE1_THRESHOLD",
    "partition",
    "distinct_count",
    "cosine_test",
    "lexical_test",
    "rouge1_f",
    "distinct_by_cosine",
    "distinct_by_rouge1",
]

# benchmarks/distinct_calibration.py on LIMA-OE with all-minilm-l6-v2 (module docstring)
COSINE_THRESHOLD = 0.67
ROUGE1_THRESHOLD = 0.38

T = TypeVar("T")


def partition(items: Sequence[T], same: Callable[[T, T], bool]) -> list[list[int]]:
    """Greedy equivalence classes of ``items`` as lists of indices, in order of their first member.

    ``same(representative, new)`` is called with the first member of each existing class, in class order, until it
    returns true; items that compare equal with ``==`` are put together without calling it.
    """
    classes: list[list[int]] = []
    for i, item in enumerate(items):
        for members in classes:
            rep = items[members[0]]
            if rep == item or same(rep, item):
                members.append(i)
                break
        else:
            classes.append([i])
    return classes


def distinct_count(items: Sequence[T], same: Callable[[T, T], bool]) -> int | None:
    """Number of equivalence classes of :func:`partition`; ``None`` for an empty sequence."""
    return len(partition(items, same)) if len(items) else None


def cosine_test(
    vectors: dict[str, np.ndarray], threshold: float = COSINE_THRESHOLD
) -> Callable[[str, str], bool]:
    """``same(a, b)``: cosine of the texts' vectors (looked up in ``vectors``) >= ``threshold``.

    A text without a vector (e.g. the empty answer) matches nothing but an identical text.
    """

    def same(a: str, b: str) -> bool:
        va, vb = vectors.get(a), vectors.get(b)
        if va is None or vb is None:
            return False
        na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
        if na == 0.0 or nb == 0.0:
            return False
        return float(np.dot(va, vb)) / (na * nb) >= threshold

    return same


def distinct_by_cosine(
    texts: Sequence[str], vectors: dict[str, np.ndarray], *, threshold: float = COSINE_THRESHOLD
) -> int | None:
    """distinct@k of ``texts`` with the embedding-cosine test (``vectors`` maps each non-empty text to its row)."""
    return distinct_count(list(texts), cosine_test(vectors, threshold))


@functools.lru_cache(maxsize=65536)
def _unigram_counts(text: str) -> tuple[Counter[str], int]:
    from overtonlite.metrics.lexsuite import rouge_tokens

    toks = rouge_tokens(text)
    return Counter(toks), len(toks)


def rouge1_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-1 F of two token sequences: clipped unigram overlap m, F = 2m / (len(a) + len(b)); 0 if either is
    empty (the ``rouge_score`` package's convention)."""
    if not a or not b:
        return 0.0
    overlap = sum((Counter(a) & Counter(b)).values())
    return 2.0 * overlap / (len(a) + len(b))


def lexical_test(threshold: float = ROUGE1_THRESHOLD) -> Callable[[str, str], bool]:
    """``same(a, b)``: ROUGE-1 F of the two texts (``rouge_score`` tokens, no stemming) >= ``threshold``."""

    def same(a: str, b: str) -> bool:
        (ca, na), (cb, nb) = _unigram_counts(a), _unigram_counts(b)
        if not na or not nb:
            return threshold <= 0.0
        small, large = (ca, cb) if len(ca) <= len(cb) else (cb, ca)
        overlap = sum(min(c, large[w]) for w, c in small.items() if w in large)
        return 2.0 * overlap / (na + nb) >= threshold

    return same


def distinct_by_rouge1(texts: Sequence[str], *, threshold: float = ROUGE1_THRESHOLD) -> int | None:
    """distinct@k of ``texts`` with the ROUGE-1 F test."""
    return distinct_count(list(texts), lexical_test(threshold))


def best_threshold(positive: Sequence[float], negative: Sequence[float]) -> dict[str, Any]:
    """The threshold t maximising balanced accuracy of "value >= t" for separating ``positive`` from ``negative``.

    Candidates are the midpoints between consecutive distinct observed values; among tied best candidates the
    middle one (by position) is taken. Returns ``{"threshold", "balanced_accuracy", "tpr", "tnr"}``.
    """
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("both groups need at least one value")
    values = np.unique(np.concatenate([pos, neg]))
    cands = (values[:-1] + values[1:]) / 2.0 if values.size > 1 else values
    tpr = np.array([(pos >= t).mean() for t in cands])
    tnr = np.array([(neg < t).mean() for t in cands])
    bal = (tpr + tnr) / 2.0
    best = np.flatnonzero(np.isclose(bal, bal.max()))
    k = int(best[len(best) // 2])
    return {
        "threshold": float(cands[k]),
        "balanced_accuracy": float(bal[k]),
        "tpr": float(tpr[k]),
        "tnr": float(tnr[k]),
    }


def share(count: int | None, k: int) -> float | None:
    """distinct@k / k, the share of the samples that opened a class; ``None`` when undefined."""
    if count is None or k <= 0 or (isinstance(count, float) and math.isnan(count)):
        return None
    return count / k
