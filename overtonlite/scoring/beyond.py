"""Per-group metrics beyond the paper, added to every ``metrics.jsonl`` record by :func:`score_group`.

* ``distinct_at_n``: distinct@N, the number of equivalence classes among the group's N samples with the
  embedding-cosine test (:data:`overtonlite.metrics.distinct.COSINE_THRESHOLD`), on the vectors the scoring
  context already holds (no extra embedding);
* ``distinct_at_n_lexical``: the same with the ROUGE-1 F test;
* ``distinct_at_n_filtered``: distinct@N among the samples that pass the quality filter only (``null`` when none
  passes), with the cosine test;
* ``compression_ratio``, ``homogenization_rougel``, ``self_repetition``, ``ngram_diversity``: the lexical suite
  of :mod:`overtonlite.metrics.lexsuite` over the group's samples.

Being numeric per-group keys, they are summarised per system (mean over prompts, bootstrap CI) like the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from overtonlite.metrics import distinct, lexsuite

KEYS: tuple[str, ...] = (
    "distinct_at_n",
    "distinct_at_n_lexical",
    "distinct_at_n_filtered",
    "compression_ratio",
    "homogenization_rougel",
    "self_repetition",
    "ngram_diversity",
)


def settings(embedder_name: str | None) -> dict[str, Any]:
    """What ``summary.json["settings"]["distinct"]`` records about the equivalence tests."""
    calibrated = embedder_name == "all-minilm-l6-v2"
    return {
        "procedure": "greedy: each sample compared with the first member of each earlier class",
        "cosine_threshold": distinct.COSINE_THRESHOLD,
        "cosine_threshold_source": "LIMA-OE missing-information labels, all-minilm-l6-v2"
        + ("" if calibrated else f"; not calibrated for {embedder_name}"),
        "rouge1_threshold": distinct.ROUGE1_THRESHOLD,
        "ngram_diversity": "sum over n=1..4 of unique/total n-grams (diversity 0.3.1 definition)",
        "compression": "gzip level 9, 18-byte header and trailer counted, no file name",
    }


def text_metrics(texts: Sequence[str]) -> dict[str, Any]:
    """The :data:`KEYS` that need the texts only (no vectors, no quality filter)."""
    texts = list(texts)
    return {
        "distinct_at_n_lexical": distinct.distinct_by_rouge1(texts),
        "compression_ratio": lexsuite.compression_ratio(texts),
        "homogenization_rougel": lexsuite.homogenization_rougel(texts),
        "self_repetition": lexsuite.self_repetition(texts),
        "ngram_diversity": lexsuite.ngram_diversity(texts),
    }


def group_metrics(
    texts: Sequence[str],
    vectors: dict[str, np.ndarray],
    passing: Sequence[bool],
    text_part: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The :data:`KEYS` of one group: ``texts`` its samples, ``vectors`` text -> sentence vector, ``passing`` the
    quality filter per sample; ``text_part``: :func:`text_metrics` of the texts when already computed."""
    texts = list(texts)
    kept = [t for t, ok in zip(texts, passing, strict=True) if ok]
    lex = text_part if text_part is not None else text_metrics(texts)
    return {
        "distinct_at_n": distinct.distinct_by_cosine(texts, vectors),
        "distinct_at_n_lexical": lex["distinct_at_n_lexical"],
        "distinct_at_n_filtered": distinct.distinct_by_cosine(kept, vectors) if kept else None,
        "compression_ratio": lex["compression_ratio"],
        "homogenization_rougel": lex["homogenization_rougel"],
        "self_repetition": lex["self_repetition"],
        "ngram_diversity": lex["ngram_diversity"],
    }
