"""Bootstrap intervals, Spearman and mean_or_none: hand values and properties."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overtonlite.metrics.stats import (
    bootstrap_ci,
    mean_or_none,
    paired_bootstrap_ci,
    ratio_bootstrap_ci,
    spearman,
)


def test_bootstrap_ci_degenerate_sizes() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert all(math.isnan(v) for v in bootstrap_ci([None, float("nan")]))
    assert bootstrap_ci([0.3]) == (0.3, 0.3, 0.3)
    assert bootstrap_ci([None, 0.3, float("nan")]) == (0.3, 0.3, 0.3)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)


def test_bootstrap_ci_two_values_hand_computed() -> None:
    # resample means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5% quantiles
    # of 2000 draws are 0 and 1
    mean, lo, hi = bootstrap_ci([0.0, 1.0])
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.2, 0.55, 0.6, 0.3]
    a = bootstrap_ci(values, seed=1)
    assert a == bootstrap_ci(values, seed=1)
    assert a != bootstrap_ci(values, seed=2)
    mean, lo, hi = a
    assert mean == pytest.approx(np.mean(values))
    assert min(values) <= lo < mean < hi <= max(values)
    # a wider alpha gives a narrower interval
    _, lo2, hi2 = bootstrap_ci(values, alpha=0.5, seed=1)
    assert lo <= lo2 and hi2 <= hi


def test_bootstrap_ci_matches_a_plain_loop() -> None:
    values = np.array([0.1, 0.4, 0.35, 0.8, 0.2])
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 5, size=(300, 5))
    means = values[idx].mean(axis=1)
    expected = np.quantile(means, [0.05, 0.95])
    _, lo, hi = bootstrap_ci(list(values), n_boot=300, alpha=0.1, seed=7)
    assert (lo, hi) == pytest.approx(tuple(expected))


def test_bootstrap_ci_bad_parameters() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], n_boot=0)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], alpha=1.0)
    with pytest.raises(TypeError):
        bootstrap_ci([1.0, "x"])  # type: ignore[list-item]


def test_bootstrap_is_fast() -> None:
    values = list(np.random.default_rng(0).random(50))
    t0 = time.perf_counter()
    bootstrap_ci(values)
    assert time.perf_counter() - t0 < 0.5  # milliseconds in practice; generous for a loaded CI machine


def test_paired_bootstrap_ci_hand_values() -> None:
    # pairs with a missing side are dropped: diffs are [1, 1]
    assert paired_bootstrap_ci([1, 2, None, 4], [0, 1, 5, None]) == (1.0, 1.0, 1.0)
    mean, lo, hi = paired_bootstrap_ci([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert mean == 2.0 and 1.0 <= lo <= mean <= hi <= 3.0
    assert all(math.isnan(v) for v in paired_bootstrap_ci([None], [1.0]))
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1.0], [1.0, 2.0])


def test_ratio_bootstrap_ci_hand_values() -> None:
    # den is always 2 x num, so every resample has ratio 0.5
    assert ratio_bootstrap_ci([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx((0.5, 0.5, 0.5))
    # ratio of means, not mean of ratios: (1 + 3) / (1 + 1) = 2
    r, lo, hi = ratio_bootstrap_ci([1.0, 3.0], [1.0, 1.0])
    assert r == 2.0 and (lo, hi) == (1.0, 3.0)
    assert all(math.isnan(v) for v in ratio_bootstrap_ci([1.0, 2.0], [0.0, 0.0]))
    assert ratio_bootstrap_ci([0.2], [0.4]) == (0.5, 0.5, 0.5)
    # a resample whose denominator mean is 0 is left out: [(1, 0), (1, 2)] -> ratios 1/1=1 (mixed) or 0.5
    r, lo, hi = ratio_bootstrap_ci([1.0, 1.0], [0.0, 2.0])
    assert r == 1.0 and not math.isnan(lo) and 0.5 <= lo <= hi <= 1.0


def test_spearman_hand_values() -> None:
    # d = (0, 1, 1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties: ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4) -> 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, None, 3], [10, 20, 5, 30]) == pytest.approx(1.0)
    assert math.isnan(spearman([1], [2]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # constant side: undefined
    with pytest.raises(ValueError):
        spearman([1, 2], [1])


def test_mean_or_none() -> None:
    assert mean_or_none([1, None, 3, float("nan")]) == 2.0
    assert mean_or_none([]) is None
    assert mean_or_none([None]) is None


_values = st.lists(
    st.one_of(st.none(), st.just(float("nan")), st.floats(min_value=-1e6, max_value=1e6)),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(_values, st.integers(min_value=0, max_value=2**32 - 1))
def test_bootstrap_properties(values, seed) -> None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    mean, lo, hi = bootstrap_ci(values, n_boot=200, seed=seed)
    if not present:
        assert math.isnan(mean) and math.isnan(lo) and math.isnan(hi)
        assert mean_or_none(values) is None
    else:
        tol = 1e-6 * (1 + max(abs(v) for v in present))
        # the percentile interval lies within the data range (it need not contain the point estimate)
        assert min(present) - tol <= lo <= hi + tol
        assert hi <= max(present) + tol
        assert min(present) - tol <= mean <= max(present) + tol
        assert mean == pytest.approx(mean_or_none(values))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), max_size=25))
def test_spearman_properties(pairs) -> None:
    x = [p[0] for p in pairs]
    y = [p[1] for p in pairs]
    rho = spearman(x, y)
    if len(set(x)) < 2 or len(set(y)) < 2:
        assert math.isnan(rho)
    else:
        assert -1.0 <= rho <= 1.0
        assert spearman(x, x) == pytest.approx(1.0)
        assert rho == pytest.approx(spearman(y, x))
