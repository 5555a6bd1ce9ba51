"""Cross-system homogeneity: do different systems give the same answers? (pure numpy functions)

Inputs are the sentence vectors of one prompt's samples, one 2-D array of rows per system. Rows are renormalised;
an all-zero row stays zero (and contributes cosine 0).

* :func:`cross_cosine`: the mean cosine over all (a, b) pairs with ``a`` from one system and ``b`` from another;
* :func:`within_cosines`: the cosines of all unordered pairs of one system's samples (its diagonal entry is their
  mean, the paper's within-prompt semantic similarity);
* :func:`similarity_matrix`: per prompt, the cross-system (off the diagonal) and within-system (on it) mean
  cosine, then the mean over the prompts where both entries exist;
* :func:`histogram`: counts of values in fixed bins (values outside the range go to the end bins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from overtonlite.metrics.semantic import unit_rows

__all__ = ["cross_cosine", "within_cosines", "similarity_matrix", "histogram", "HIST_EDGES"]

HIST_EDGES: tuple[float, ...] = tuple(round(-0.1 + 0.05 * i, 2) for i in range(23))  # -0.10, -0.05, ..., 1.00


def cross_cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean cosine over all pairs (row of ``a``, row of ``b``); ``None`` when either has no row."""
    ua, ub = unit_rows(a), unit_rows(b)
    if not len(ua) or not len(ub):
        return None
    return float(np.clip(ua @ ub.T, -1.0, 1.0).mean())


def within_cosines(a: np.ndarray) -> np.ndarray:
    """Cosines of all unordered pairs of distinct rows (empty for fewer than 2 rows)."""
    u = unit_rows(a)
    iu = np.triu_indices(len(u), k=1)
    return np.clip(u @ u.T, -1.0, 1.0)[iu]


def similarity_matrix(
    prompts: Sequence[Mapping[str, np.ndarray]], systems: Sequence[str]
) -> tuple[list[list[float | None]], list[list[int]]]:
    """``(matrix, n_prompts)``: entry (i, j) is the mean over prompts of the cross-system cosine of systems i and j
    (i != j) or of system i's mean within-prompt pairwise cosine (i == j); ``n_prompts`` counts the prompts behind
    each entry (``None`` entries have none). ``prompts``: per prompt, system -> its samples' vectors."""
    k = len(systems)
    sums = np.zeros((k, k))
    counts = np.zeros((k, k), dtype=int)
    for per_system in prompts:
        for i, si in enumerate(systems):
            a = per_system.get(si)
            if a is None:
                continue
            for j in range(i, k):
                b = per_system.get(systems[j])
                if b is None:
                    continue
                if i == j:
                    w = within_cosines(a)
                    val = float(w.mean()) if w.size else None
                else:
                    val = cross_cosine(a, b)
                if val is None:
                    continue
                sums[i, j] += val
                counts[i, j] += 1
                if i != j:
                    sums[j, i] += val
                    counts[j, i] += 1
    matrix = [
        [float(sums[i, j] / counts[i, j]) if counts[i, j] else None for j in range(k)] for i in range(k)
    ]
    return matrix, counts.tolist()


def histogram(values: Sequence[float] | np.ndarray, edges: Sequence[float] = HIST_EDGES) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]) (the last bin closed); values outside go to the first / last bin."""
    e = np.asarray(edges, dtype=np.float64)
    v = np.clip(np.asarray(values, dtype=np.float64), e[0], e[-1])
    counts, _ = np.histogram(v, bins=e)
    return [int(c) for c in counts]
