"""Semantic metrics: hand-computed values and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from overtonlite.metrics import semantic


def test_mean_pairwise_cosine_hand_computed():
    # rows: e1, e2, (e1+e2)/sqrt2 -> cosines 0, 1/sqrt2, 1/sqrt2
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert semantic.mean_pairwise_cosine(v) == pytest.approx((0 + 2 / math.sqrt(2)) / 3)


def test_mean_pairwise_cosine_needs_two_rows():
    assert semantic.mean_pairwise_cosine(np.zeros((1, 3)) + 1) is None
    assert semantic.mean_pairwise_cosine(np.zeros((0, 3))) is None


def test_vendi_identical_and_orthogonal():
    same = np.tile([[0.6, 0.8]], (4, 1))
    assert semantic.vendi_score(same) == pytest.approx(1.0)
    assert semantic.vendi_score(np.eye(3)) == pytest.approx(3.0)


def test_vendi_hand_computed_two_vectors():
    # K = [[1, c], [c, 1]] / 2 has eigenvalues (1 +- c) / 2
    c = 0.6
    v = np.array([[1.0, 0.0], [c, math.sqrt(1 - c * c)]])
    lam = np.array([(1 + c) / 2, (1 - c) / 2])
    expected = math.exp(-(lam * np.log(lam)).sum())
    assert semantic.vendi_score(v) == pytest.approx(expected)


def test_vendi_empty_is_an_error():
    with pytest.raises(ValueError):
        semantic.vendi_score(np.zeros((0, 4)))


def test_cosine_to_reference():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    assert semantic.cosine_to_reference(v, np.array([2.0, 0.0])).tolist() == pytest.approx([1.0, 0.0, -1.0])


def test_bertscore_greedy_matching_toy_vectors():
    # candidate tokens: a=(1,0), b=(0,1); reference tokens: a=(1,0), c=(1,1)/sqrt2
    cand = np.array([[1.0, 0.0], [0.0, 1.0]])
    ref = np.array([[1.0, 0.0], [1.0, 1.0]])
    p, r, f = semantic.bertscore_f1(cand, ref)
    s = 1 / math.sqrt(2)
    assert p == pytest.approx((1.0 + s) / 2)  # a->a (1), b->c (1/sqrt2)
    assert r == pytest.approx((1.0 + s) / 2)  # a->a (1), c->a or b (1/sqrt2)
    assert f == pytest.approx(2 * p * r / (p + r))


def test_bertscore_asymmetric_precision_recall():
    cand = np.array([[1.0, 0.0]])
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    p, r, f = semantic.bertscore_f1(cand, ref)
    assert p == pytest.approx(1.0)
    assert r == pytest.approx(0.5)
    assert f == pytest.approx(2 / 3)


def test_bertscore_empty_side_is_zero():
    assert semantic.bertscore_f1(np.zeros((0, 2)), np.eye(2)) == (0.0, 0.0, 0.0)
    assert semantic.bertscore_f1(np.eye(2), np.zeros((0, 2))) == (0.0, 0.0, 0.0)


def test_rescale():
    assert semantic.rescale(0.9, 0.8) == pytest.approx(0.5)
    assert semantic.rescale(0.8, 0.8) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        semantic.rescale(0.5, 1.0)


def test_cross_prompt_pairs_are_seeded_and_cross_prompt():
    ids = ["a", "a", "b", "b", "c"]
    p1 = semantic.cross_prompt_pairs(ids, n_pairs=50, seed=3)
    assert p1 == semantic.cross_prompt_pairs(ids, n_pairs=50, seed=3)
    assert len(p1) == 50
    assert all(ids[i] != ids[j] for i, j in p1)
    assert semantic.cross_prompt_pairs(["a", "a"], n_pairs=10) == []


def test_cross_prompt_baseline_falls_back_below_min_prompts():
    toks = [np.eye(2)] * 4
    assert semantic.cross_prompt_baseline(toks, ["a", "a", "b", "b"], min_prompts=5) is None
    b = semantic.cross_prompt_baseline(toks, ["a", "b", "c", "d"], min_prompts=2, n_pairs=20)
    assert b == pytest.approx(1.0)  # identical token sets


def test_neutral_baseline_hand_computed():
    t1, t2 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert semantic.neutral_baseline([t1, t2]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        semantic.neutral_baseline([t1])


finite = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=finite))
def test_vendi_bounds_and_cosine_range(v):
    n = v.shape[0]
    score = semantic.vendi_score(v)
    assert 1.0 - 1e-9 <= score <= n + 1e-9
    cos = semantic.mean_pairwise_cosine(v)
    if n < 2:
        assert cos is None
    else:
        assert -1.0 <= cos <= 1.0 and not math.isnan(cos)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(0, 5), st.just(3)), elements=finite),
    arrays(np.float64, st.tuples(st.integers(0, 5), st.just(3)), elements=finite),
)
def test_bertscore_in_range(a, b):
    p, r, f = semantic.bertscore_f1(a, b)
    for x in (p, r, f):
        assert -1.0 <= x <= 1.0 and not math.isnan(x)


def test_identical_token_sets_give_one():
    t = np.random.default_rng(0).normal(size=(7, 16))
    assert semantic.bertscore_f1(t, t)[2] == pytest.approx(1.0)
