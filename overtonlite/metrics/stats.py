"""Seeded, vectorised bootstrap confidence intervals and a pure-numpy Spearman correlation.

Conventions shared by every function here:

* **Missing values.** ``None`` and NaN entries are *dropped* before anything is computed (for the paired
  functions, a pair is dropped when either side is missing). A per-prompt metric is ``None`` when it is undefined
  for that prompt (e.g. Jaccard of two empty samples), so dropping it means "average over the prompts where the
  metric exists".
* **Degenerate sizes.** No value left -> ``(nan, nan, nan)``: there is nothing to estimate, and NaN is the
  documented answer. One value ``v`` -> ``(v, v, v)``: resampling one value always gives ``v``.
* **Bootstrap.** Percentile bootstrap over the units given (prompts): ``n_boot`` resamples of the same size,
  drawn with replacement by ``numpy.random.default_rng(seed)``; the interval is the ``alpha/2`` and
  ``1 - alpha/2`` quantiles of the resampled statistic (numpy's default linear interpolation). The same seed gives
  the same interval. The point estimate is the statistic on the original data, not the bootstrap mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["bootstrap_ci", "paired_bootstrap_ci", "ratio_bootstrap_ci", "spearman", "mean_or_none"]

_NAN3 = (math.nan, math.nan, math.nan)
_MAX_CELLS = 4_000_000  # resample indices held in memory at once (n_boot x n is chunked beyond this)


def _present(v: object) -> bool:
    if v is None:
        return False
    try:
        return not math.isnan(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"expected a number or None, got {v!r}") from exc


def _clean(values: Iterable[object]) -> np.ndarray:
    return np.array([float(v) for v in values if _present(v)], dtype=np.float64)  # type: ignore[arg-type]


def _pairs(a: Sequence[object], b: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise ValueError(f"paired sequences differ in length: {len(a)} != {len(b)}")
    keep = [(float(x), float(y)) for x, y in zip(a, b, strict=True) if _present(x) and _present(y)]  # type: ignore[arg-type]
    if not keep:
        return np.empty(0), np.empty(0)
    arr = np.array(keep, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def _check_params(n_boot: int, alpha: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _resample_means(columns: Sequence[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    """Means of each column over the same ``n_boot`` resamples of row indices (chunked to bound memory)."""
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // n)
    out: list[list[np.ndarray]] = [[] for _ in columns]
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        for j, col in enumerate(columns):
            out[j].append(col[idx].mean(axis=1))
        done += k
    return [np.concatenate(parts) for parts in out]


def _interval(point: float, stats: np.ndarray, alpha: float) -> tuple[float, float, float]:
    finite = stats[np.isfinite(stats)]
    if finite.size == 0:
        return (point, math.nan, math.nan)
    lo, hi = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (point, float(lo), float(hi))


def bootstrap_ci(
    values: Iterable[float | None], *, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of ``values`` and its percentile-bootstrap ``1 - alpha`` interval.

    ``None``/NaN are dropped; no value left -> ``(nan, nan, nan)``; one value ``v`` -> ``(v, v, v)``.
    """
    _check_params(n_boot, alpha)
    x = _clean(values)
    if x.size == 0:
        return _NAN3
    point = float(x.mean())
    if x.size == 1:
        return (point, point, point)
    (means,) = _resample_means([x], n_boot, seed)
    return _interval(point, means, alpha)


def paired_bootstrap_ci(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, lo, hi) of the paired differences ``a[i] - b[i]`` (e.g. two systems on the same prompts).

    Only pairs where both sides are present count. Raises ``ValueError`` when the lengths differ.
    """
    _check_params(n_boot, alpha)
    x, y = _pairs(a, b)
    return bootstrap_ci(x - y, n_boot=n_boot, alpha=alpha, seed=seed)


def ratio_bootstrap_ci(
    num: Sequence[float | None],
    den: Sequence[float | None],
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(ratio, lo, hi) for mean(num) / mean(den), resampling the (num, den) pairs together.

    Use it for "share of the aligned self-similarity": num = a method's similarity to the aligned reference,
    den = the aligned model's self-similarity, per prompt. Only pairs with both sides present count. A resample
    whose mean(den) is 0 has no ratio and is left out of the percentiles. No pair left, or mean(den) == 0 on the
    data -> ``(nan, nan, nan)``; one pair -> ``(r, r, r)``. Raises ``ValueError`` when the lengths differ.
    """
    _check_params(n_boot, alpha)
    x, y = _pairs(num, den)
    if x.size == 0 or y.mean() == 0.0:
        return _NAN3
    point = float(x.mean() / y.mean())
    if x.size == 1:
        return (point, point, point)
    mx, my = _resample_means([x, y], n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(my != 0.0, mx / np.where(my != 0.0, my, 1.0), np.nan)
    return _interval(point, ratios, alpha)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    ranks = np.empty(v.size, dtype=np.float64)
    # boundaries of runs of equal values; each run gets the mean of its 1-based positions
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]
    run_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def spearman(x: Sequence[float | None], y: Sequence[float | None]) -> float:
    """Spearman's rank correlation: Pearson correlation of the average ranks (ties share their mean rank).

    Pairs with a missing side are dropped. Returns ``nan`` when fewer than two pairs remain or when either side
    is constant (the correlation is undefined then). Raises ``ValueError`` when the lengths differ.
    """
    a, b = _pairs(x, y)
    if a.size < 2:
        return math.nan
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    if denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(ra @ rb) / denom))


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Mean of the present values (``None``/NaN dropped), or ``None`` when there is none."""
    x = _clean(values)
    if x.size == 0:
        return None
    return float(x.mean())
