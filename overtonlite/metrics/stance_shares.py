"""Stance shares corrected for the classifier's confusion, with CIs that include the classifier's uncertainty.

A local stance classifier is not GPT-4: on a system it never saw it mislabels some answers, and the errors do not
cancel (it calls some "yes"/"no" answers "both" and the other way round). Aggregate shares such as the "both" share
or the yes/no split rate then inherit a bias. This module removes that bias with the classifier's *out-of-system*
confusion matrix ``counts[t, p]`` (answers GPT-4 labelled ``t`` that the classifier labelled ``p``, each counted
while the classifier was fitted on other systems only; :data:`overtonlite.metrics.stance_model.CONFUSION_FILE`):

* **Label shares.** With ``C[t, p] = P(pred p | true t)`` the predicted shares are ``p_pred = C^T p_true``, so
  ``p_true`` is the least-squares solution of ``C^T x = p_pred``, projected onto the probability simplex.
* **Yes/no split rate** (share of prompts whose samples include a yes *and* a no). Each answer's true label gets
  the posterior ``P(true t | pred p) ∝ C[t, p] p_true[t]``; with answers independent given their predicted labels,
  a prompt splits with probability ``1 - Π(1 - P_yes) - Π(1 - P_no) + Π(1 - P_yes - P_no)``. The corrected split
  rate is the mean of that over prompts.
* **CI.** A percentile bootstrap over prompts in which every replicate also draws the confusion matrix: each row
  from ``Dirichlet(counts[t] + prior)``. The interval therefore widens with the classifier's uncertainty (few
  labelled answers, a confusable label) and not only with the number of prompts.

Everything here is a pure function of label lists and counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "LABELS",
    "project_simplex",
    "confusion_rates",
    "correct_shares",
    "posteriors",
    "split_probability",
    "corrected_estimates",
    "stance_share_estimates",
]

LABELS: tuple[str, ...] = ("yes", "no", "both", "other")
"""Label order of the confusion matrix rows (GPT-4) and columns (classifier)."""


def _check_counts(counts: object, stacked: bool = False) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    k = len(LABELS)
    ok = c.shape[-2:] == (k, k) and (c.ndim == 2 or (stacked and c.ndim == 3 and c.shape[0] > 0))
    if not ok or not np.all(np.isfinite(c)) or (c < 0).any():
        raise ValueError(
            f"confusion counts must be a non-negative {k}x{k} array"
            + (" or a stack of them" if stacked else "")
        )
    return c


def project_simplex(v: Sequence[float]) -> np.ndarray:
    """Euclidean projection of ``v`` onto the probability simplex (non-negative, sums to 1)."""
    x = np.asarray(v, dtype=np.float64)
    u = np.sort(x)[::-1]
    css = np.cumsum(u)
    k = np.nonzero(u * np.arange(1, x.size + 1) > css - 1.0)[0][-1]
    return np.maximum(x - (css[k] - 1.0) / (k + 1), 0.0)


def confusion_rates(counts: object, prior: float = 0.5) -> np.ndarray:
    """Row-normalised confusion ``C[t, p] = P(pred p | true t)``, with ``prior`` added to every cell first."""
    c = _check_counts(counts) + prior
    return c / c.sum(axis=1, keepdims=True)


def correct_shares(pred_shares: Sequence[float], rates: np.ndarray) -> np.ndarray:
    """True label shares from predicted ones: least squares of ``rates^T x = pred_shares``, on the simplex."""
    p = np.asarray(pred_shares, dtype=np.float64)
    x = np.linalg.lstsq(np.asarray(rates, dtype=np.float64).T, p, rcond=None)[0]
    return project_simplex(x)


def posteriors(rates: np.ndarray, true_shares: Sequence[float]) -> np.ndarray:
    """``post[t, p] = P(true t | pred p)`` from ``rates[t, p]`` and the true label shares (Bayes' rule)."""
    joint = np.asarray(rates, dtype=np.float64) * np.asarray(true_shares, dtype=np.float64)[:, None]
    col = joint.sum(axis=0, keepdims=True)
    uniform = np.full_like(joint, 1.0 / joint.shape[0])
    return np.divide(joint, col, out=uniform, where=col > 0)


def split_probability(pred: Sequence[int], post: np.ndarray) -> float:
    """Probability that a prompt's true labels include a yes and a no, given its predicted label indices."""
    probs = np.asarray(post)[:, np.asarray(pred, dtype=int)]
    p_yes, p_no = probs[0], probs[1]
    return float(
        1.0 - np.prod(1.0 - p_yes) - np.prod(1.0 - p_no) + np.prod(np.clip(1.0 - p_yes - p_no, 0.0, 1.0))
    )


def _indices(groups: Sequence[Sequence[str]]) -> list[np.ndarray]:
    out = []
    for g in groups:
        bad = sorted({lab for lab in g if lab not in LABELS}, key=str)
        if bad:
            raise ValueError(f"unknown stance label(s) {bad}; expected one of {list(LABELS)}")
        out.append(np.array([LABELS.index(lab) for lab in g], dtype=int))
    return out


def _estimate(idx: list[np.ndarray], rates: np.ndarray) -> tuple[np.ndarray, float]:
    pred = np.mean([np.bincount(g, minlength=len(LABELS)) / g.size for g in idx], axis=0)
    true = correct_shares(pred, rates)
    post = posteriors(rates, true)
    split = float(np.mean([split_probability(g, post) for g in idx]))
    return true, split


def corrected_estimates(groups: Sequence[Sequence[str]], counts: object, prior: float = 0.5) -> dict:
    """Point estimates: raw and corrected label shares (mean over prompts) and yes/no split rates.

    ``groups`` holds one list of predicted labels per prompt (empty lists are skipped); ``counts`` is the 4x4
    out-of-system confusion (rows GPT-4, columns classifier, order :data:`LABELS`), or a stack of such matrices
    (one per validation system), which is summed.
    """
    c = _check_counts(counts, stacked=True)
    rates = confusion_rates(c.sum(axis=0) if c.ndim == 3 else c, prior)
    idx = [g for g in _indices(groups) if g.size]
    if not idx:
        raise ValueError("no prompt has any stance label")
    raw = np.mean([np.bincount(g, minlength=len(LABELS)) / g.size for g in idx], axis=0)
    raw_split = float(np.mean([bool((g == 0).any() and (g == 1).any()) for g in idx]))
    true, split = _estimate(idx, rates)
    return {
        "raw": dict(zip(LABELS, map(float, raw), strict=True)),
        "corrected": dict(zip(LABELS, map(float, true), strict=True)),
        "raw_split": raw_split,
        "corrected_split": split,
        "n_prompts": len(idx),
    }


def stance_share_estimates(
    groups: Sequence[Sequence[str]],
    counts: object,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    prior: float = 0.5,
) -> dict:
    """Corrected "both" share, label shares and yes/no split rate with bootstrap CIs.

    Returns ``{"both_share": {"mean", "ci", "raw", "n_prompts"}, "yes_no_split": {...}, "shares": {label:
    {"mean", "ci", "raw"}}}``. ``mean`` is the corrected point estimate; ``ci`` the ``1 - alpha`` percentile
    interval of a bootstrap over prompts that redraws each confusion row from ``Dirichlet(counts + prior)`` in
    every replicate; ``raw`` the uncorrected value. ``counts`` may be a stack of matrices, one per validation
    system: the point estimate uses their sum, and every replicate first picks one system's matrix at random, so
    that the CI also carries how much the confusion differs between systems. Raises ``ValueError`` for unknown
    labels, a bad matrix, or no labels at all.
    """
    point = corrected_estimates(groups, counts, prior)
    c = _check_counts(counts, stacked=True)
    stack = c if c.ndim == 3 else c[None]
    idx = [g for g in _indices(groups) if g.size]
    rng = np.random.default_rng(seed)
    k = len(idx)
    shares = np.empty((n_boot, len(LABELS)))
    splits = np.empty(n_boot)
    for b in range(n_boot):
        pick = stack[rng.integers(0, len(stack))] if len(stack) > 1 else stack[0]
        rates = np.stack([rng.dirichlet(row + prior) for row in pick])
        sample = [idx[i] for i in rng.integers(0, k, size=k)]
        shares[b], splits[b] = _estimate(sample, rates)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

    def ci(v: np.ndarray) -> list[float]:
        return [float(np.percentile(v, lo)), float(np.percentile(v, hi))]

    n = point["n_prompts"]
    out_shares = {
        lab: {"mean": point["corrected"][lab], "ci": ci(shares[:, j]), "raw": point["raw"][lab]}
        for j, lab in enumerate(LABELS)
    }
    return {
        "both_share": {**out_shares["both"], "n_prompts": n},
        "yes_no_split": {
            "mean": point["corrected_split"],
            "ci": ci(splits),
            "raw": point["raw_split"],
            "n_prompts": n,
        },
        "shares": out_shares,
    }
