"""Semantic similarity and diversity from sentence and token embeddings (pure numpy functions).

Inputs are L2-normalised sentence vectors (rows) or per-text token-state matrices, as produced by an
:class:`overtonlite.backends.base.Embedder`. Vectors are renormalised defensively; an all-zero row stays zero.

BERTScore-style F1 (MiniLM token states): the greedy-matching F1 of BERTScore (Zhang et al., 2020) computed on the
token states of the sentence embedder, not on roberta-large layer 17, so its values are not comparable with the
paper's BERTScore numbers. Raw values sit in a compressed range (unrelated texts ~0.75), so a baseline rescale is
applied: ``rescaled = (F1 - b) / (1 - b)`` where ``b`` is the mean F1 of random cross-prompt pairs
(:func:`cross_prompt_baseline`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Neutral, mutually unrelated sentences (written for this project) used for the F1 baseline when the input is too
# small to draw cross-prompt pairs from.
NEUTRAL_SENTENCES: tuple[str, ...] = (
    "The train to the coast leaves every morning at half past seven.",
    "Tomatoes grow best in warm soil with plenty of direct sunlight.",
    "A binary search halves the remaining interval at every step.",
    "The museum reopened after a long renovation of its east wing.",
    "Regular stretching can reduce stiffness in the lower back.",
    "Interest rates affect how much people pay for their mortgages.",
    "The orchestra tuned their instruments before the concert began.",
    "Glaciers carve deep valleys as they slowly move downhill.",
    "She painted the kitchen a pale shade of green last summer.",
    "Most spiders are harmless to humans and eat small insects.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Volunteers cleaned the beach and collected bags of plastic.",
)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float64."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"expected a 2-D array of row vectors, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarities of the rows (zero rows give 0 similarity, 0 on their diagonal)."""
    v = unit_rows(vectors)
    return np.clip(v @ v.T, -1.0, 1.0)


def mean_pairwise_cosine(vectors: np.ndarray) -> float | None:
    """Mean cosine over all unordered pairs of rows; ``None`` for fewer than 2 rows (no pair exists)."""
    v = unit_rows(vectors)
    n = v.shape[0]
    if n < 2:
        return None
    sims = v @ v.T
    iu = np.triu_indices(n, k=1)
    return float(np.clip(sims[iu], -1.0, 1.0).mean())


def vendi_score(vectors: np.ndarray) -> float:
    """Vendi score (Friedman & Dieng, 2023) with the cosine kernel: ``exp(-sum(l * log l))`` over the eigenvalues
    ``l`` of ``K / n``, ``K[i, j] = cos(v_i, v_j)``.

    Bounds: 1 <= vendi <= n. It is 1 when all rows point the same way (one effective sample) and n when the rows are
    orthogonal. A zero row is treated as a unit vector orthogonal to everything (its diagonal is set to 1) so the
    trace of ``K / n`` stays 1. Raises ``ValueError`` for no rows.
    """
    v = unit_rows(vectors)
    n = v.shape[0]
    if n == 0:
        raise ValueError("vendi_score needs at least one vector")
    k = np.clip(v @ v.T, -1.0, 1.0)
    np.fill_diagonal(k, 1.0)
    eig = np.linalg.eigvalsh(k / n)
    eig = eig[eig > 1e-12]
    eig = eig / eig.sum()
    entropy = float(-(eig * np.log(eig)).sum())
    return float(min(max(math.exp(entropy), 1.0), float(n)))


def cosine_to_reference(vectors: np.ndarray, ref_vec: np.ndarray) -> np.ndarray:
    """Cosine of every row with one reference vector, shape (n,)."""
    v = unit_rows(vectors)
    r = unit_rows(np.asarray(ref_vec, dtype=np.float64).reshape(1, -1))[0]
    return np.clip(v @ r, -1.0, 1.0)


def _as_float(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def unit_tokens(tokens: np.ndarray) -> np.ndarray:
    """Row-normalised token states (dtype kept when float32/float64); zero rows stay zero."""
    a = _as_float(tokens)
    if a.ndim != 2:
        return a
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, norms, out=np.zeros_like(a), where=norms > 0)


def bertscore_f1(
    tokens_a: np.ndarray, tokens_b: np.ndarray, *, normalized: bool = False
) -> tuple[float, float, float]:
    """Greedy-matching precision, recall and F1 of candidate ``tokens_a`` against reference ``tokens_b``.

    P = mean over candidate tokens of the best cosine to any reference token; R = the same from the reference side;
    F1 = 2PR / (P + R), and 0.0 when P or R is not positive. If either side has no tokens (an empty text), the
    result is ``(0.0, 0.0, 0.0)``, as in the original BERTScore. Matching uses the cosine of token states (no idf
    weighting). Float32 inputs are computed in float32 (fast path for scoring); ``normalized=True`` skips the row
    normalisation (rows already unit length).
    """
    a = _as_float(tokens_a)
    b = _as_float(tokens_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] == 0 or b.shape[0] == 0:
        return 0.0, 0.0, 0.0
    if not normalized:
        a, b = unit_tokens(a), unit_tokens(b)
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    sims = a @ b.T
    p = min(max(float(sims.max(axis=1).mean()), -1.0), 1.0)
    r = min(max(float(sims.max(axis=0).mean()), -1.0), 1.0)
    f = 2 * p * r / (p + r) if (p > 0 and r > 0) else 0.0  # the harmonic mean needs positive P and R
    return p, r, float(f)


def rescale(value: float, baseline: float) -> float:
    """Baseline rescaling ``(value - b) / (1 - b)``; 0 means 'as similar as unrelated texts', 1 means identical."""
    if baseline >= 1.0:
        raise ValueError("the rescaling baseline must be below 1")
    return (value - baseline) / (1.0 - baseline)


def cross_prompt_pairs(
    prompt_ids: Sequence[object], *, n_pairs: int = 1000, seed: int = 0
) -> list[tuple[int, int]]:
    """Seeded random index pairs ``(i, j)`` whose items belong to different prompts.

    Pairs are drawn uniformly with replacement from all items; pairs from the same prompt are rejected. Returns
    fewer pairs (possibly none) when fewer than two prompts exist.
    """
    ids = list(prompt_ids)
    if len({str(p) for p in ids}) < 2:
        return []
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int]] = []
    tries = 0
    while len(pairs) < n_pairs and tries < 50 * n_pairs:
        i, j = (int(x) for x in rng.integers(0, len(ids), size=2))
        tries += 1
        if str(ids[i]) != str(ids[j]):
            pairs.append((i, j))
    return pairs


def cross_prompt_baseline(
    tokens: Sequence[np.ndarray],
    prompt_ids: Sequence[object],
    *,
    n_pairs: int = 1000,
    seed: int = 0,
    min_prompts: int = 5,
) -> float | None:
    """Mean BERTScore-style F1 over ``n_pairs`` seeded random pairs of non-empty texts answering different prompts.

    Returns ``None`` when the items span fewer than ``min_prompts`` prompts; the caller then falls back to the
    pairwise F1 of :data:`NEUTRAL_SENTENCES` (see :func:`neutral_baseline`).
    """
    keep = [i for i, t in enumerate(tokens) if len(t) > 0]
    pids = [prompt_ids[i] for i in keep]
    if len({str(p) for p in pids}) < min_prompts:
        return None
    pairs = cross_prompt_pairs(pids, n_pairs=n_pairs, seed=seed)
    unit: dict[int, np.ndarray] = {}

    def get(i: int) -> np.ndarray:
        if i not in unit:
            unit[i] = unit_tokens(tokens[keep[i]])
        return unit[i]

    scores = [bertscore_f1(get(i), get(j), normalized=True)[2] for i, j in pairs]
    return float(np.mean(scores)) if scores else None


def neutral_baseline(neutral_tokens: Sequence[np.ndarray]) -> float:
    """Mean F1 over all ordered pairs of distinct built-in neutral sentences (their token states given)."""
    scores = [
        bertscore_f1(a, b)[2]
        for i, a in enumerate(neutral_tokens)
        for j, b in enumerate(neutral_tokens)
        if i != j
    ]
    if not scores:
        raise ValueError("the neutral baseline needs at least two sentences")
    return float(np.mean(scores))
