"""distinct@k: greedy partition, the cosine / lexical / judge tests and threshold calibration, on hand-computed
cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from overtonlite.metrics import distinct as D
from overtonlite.metrics.lexsuite import rouge_tokens


def test_partition_compares_with_each_class_first_member_only() -> None:
    near = lambda a, b: abs(a - b) <= 2  # noqa: E731
    # 4 is within 2 of 2 (a member) but not of 0 (the representative): greedy opens a new class
    assert D.partition([0, 2, 4], near) == [[0, 1], [2]]
    assert D.partition([1, 2, 10, 11, 3], near) == [[0, 1, 4], [2, 3]]
    assert D.distinct_count([1, 2, 10, 11, 3], near) == 2
    assert D.distinct_count([], near) is None


def test_judge_is_called_with_representative_then_new_answer_in_class_order() -> None:
    calls: list[tuple[str, str]] = []

    def judge(a: str, b: str) -> bool:
        calls.append((a, b))
        return a[0] == b[0]

    assert D.distinct_count(["apple", "banana", "avocado", "blueberry", "cherry"], judge) == 3
    assert calls == [
        ("apple", "banana"),
        ("apple", "avocado"),
        ("apple", "blueberry"),
        ("banana", "blueberry"),
        ("apple", "cherry"),
        ("banana", "cherry"),
    ]


def test_identical_texts_merge_without_calling_the_test() -> None:
    def never(a: str, b: str) -> bool:
        raise AssertionError("not called for identical texts")

    assert D.distinct_count(["same", "same", "same"], never) == 1


def test_cosine_test_on_hand_made_vectors() -> None:
    vecs = {
        "a": np.array([1.0, 0.0]),
        "b": np.array([math.cos(math.pi / 6), math.sin(math.pi / 6)]),  # cos(a, b) = 0.866
        "c": np.array([0.0, 2.0]),  # orthogonal to a, cos(b, c) = 0.5; not unit length
    }
    assert D.distinct_by_cosine(["a", "b", "c"], vecs, threshold=0.8) == 2
    assert D.distinct_by_cosine(["a", "b", "c"], vecs, threshold=0.9) == 3
    assert D.distinct_by_cosine(["a", "b", "c"], vecs, threshold=0.0) == 1
    # empty answers have no vector: they merge with each other only
    assert D.distinct_by_cosine(["", "a", "", "b"], vecs, threshold=0.8) == 2


def test_rouge1_f_hand_computed() -> None:
    a, b = rouge_tokens("The cat sat."), rouge_tokens("the CAT ran away")
    assert a == ("the", "cat", "sat") and b == ("the", "cat", "ran", "away")
    assert D.rouge1_f(a, b) == pytest.approx(2 * 2 / 7)  # overlap 2, lengths 3 and 4
    # clipped counts: "a a a" vs "a b": overlap min(3, 1) = 1 -> 2 / 5
    assert D.rouge1_f(("a", "a", "a"), ("a", "b")) == pytest.approx(0.4)
    assert D.rouge1_f((), ("a",)) == 0.0


def test_rouge1_matches_rouge_score_reference() -> None:
    # rouge_score 0.1.2, RougeScorer(['rouge1']).score(t0, t1).fmeasure (no stemmer) = 0.5384615384615385
    t0 = "Drink water, rest, and take paracetamol for the fever.\nSee a doctor if it lasts."
    t1 = "Rest and drink plenty of water; paracetamol helps with the fever."
    assert D.rouge1_f(rouge_tokens(t0), rouge_tokens(t1)) == pytest.approx(0.5384615384615385, abs=1e-12)


def test_lexical_distinct_counts() -> None:
    texts = ["the cat sat on the mat", "the cat sat on a mat", "dogs bark at night"]
    # F(0, 1) = 2*5/12 = 0.833; F(0, 2) = 0
    assert D.distinct_by_rouge1(texts, threshold=0.8) == 2
    assert D.distinct_by_rouge1(texts, threshold=0.9) == 3


def test_best_threshold_maximises_balanced_accuracy() -> None:
    res = D.best_threshold([0.9, 0.8], [0.1, 0.5])
    assert res["threshold"] == pytest.approx(0.65)
    assert res["balanced_accuracy"] == 1.0
    # overlapping groups: candidates 0.3, 0.5, 0.7; balanced accuracy 0.75, 0.5, 0.75 -> the middle of the tied
    # best (positions 0 and 2) is position 2 by `len // 2`
    res = D.best_threshold([0.8, 0.4], [0.2, 0.6])
    assert res["balanced_accuracy"] == pytest.approx(0.75)
    assert res["threshold"] == pytest.approx(0.7)
    with pytest.raises(ValueError):
        D.best_threshold([], [0.1])


def test_share() -> None:
    assert D.share(3, 4) == 0.75
    assert D.share(None, 4) is None
