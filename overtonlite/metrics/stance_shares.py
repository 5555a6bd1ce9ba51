"""Stance shares corrected for the classifier's confusion, with CIs that include the classifier's uncertainty.

A local stance classifier is not GPT-4: on a system it never saw it mislabels some answers, and the errors do not
cancel (it calls some "yes"/"no" answers "both" and the other way round). Aggregate values such as the "both" share
or the yes/no split rate then inherit a bias. This module corrects them with the classifier's *out-of-system*
confusion, measured on GPT-4-labelled answers of systems the classifier was not fitted on
(:data:`CONFUSION_FILE`, one matrix per validation system):

* **Label shares.** ``counts[t, p]`` counts answers GPT-4 labelled ``t`` that the classifier labelled ``p``. With
  ``C[t, p] = P(pred p | true t)`` the predicted shares are ``p_pred = C^T p_true``, so ``p_true`` is the
  least-squares solution of ``C^T x = p_pred`` on the probability simplex. This is done for yes / no / both among
  themselves (the 3x3 block of ``C``); the "other" share is kept as labelled, because GPT-4's rare "other"
  answers give too few counts for a stable row.
* **Yes/no split rate** (share of prompts whose answers include a yes *and* a no). Errors within a prompt are
  strongly correlated (same topic, same style), so the split is corrected at the prompt level: ``split_counts[t,
  p]`` counts prompts whose GPT-4 labels split (``t = 1``) or not, against whether the classifier's labels split
  (``p``). With ``tpr = P(pred split | split)`` and ``fpr = P(pred split | no split)`` the corrected rate is the
  Rogan-Gladen estimate ``(observed - fpr) / (tpr - fpr)``, clipped to [0, 1] (the observed rate when
  ``tpr <= fpr``). (A per-answer posterior that treats a prompt's answers as independent was tried first and
  overestimated the split rate by up to 0.43 on a held-out system.)
* **CI.** A percentile bootstrap over prompts in which every replicate also redraws the classifier's confusion:
  one validation system's matrices at random (so the CI carries how much the confusion differs between systems),
  then every row from ``Dirichlet(counts[t] + prior)`` (sampling noise of the counts). The interval therefore
  reflects the classifier's uncertainty and not only the number of prompts.

Everything here is a pure function of label lists and counts, except :func:`shipped_confusion`, which reads the
counts shipped beside the classifier's weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "LABELS",
    "CONFUSION_FILE",
    "project_simplex",
    "confusion_rates",
    "correct_shares",
    "correct_split",
    "corrected_estimates",
    "stance_share_estimates",
    "shipped_confusion",
    "summary_metrics",
]

LABELS: tuple[str, ...] = ("yes", "no", "both", "other")
"""Label order of the confusion matrix rows (GPT-4) and columns (classifier)."""

CONFUSION_FILE = Path(__file__).with_name("stance_confusion.json")
"""Out-of-system confusion of the shipped cue classifier per validation system: answer-level 4x4 ``counts`` and
prompt-level 2x2 ``split_counts`` (``benchmarks/stance_calibration.py --fit`` writes it)."""


def _check(counts: object, k: int) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    ok = c.ndim in (2, 3) and c.shape[-2:] == (k, k) and (c.ndim == 2 or c.shape[0] > 0)
    if not ok or not np.all(np.isfinite(c)) or (c < 0).any():
        raise ValueError(f"confusion counts must be a non-negative {k}x{k} array or a stack of them")
    return c if c.ndim == 3 else c[None]


def project_simplex(v: Sequence[float] | np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex (non-negative, sums to 1), row-wise for a 2-D array."""
    x = np.asarray(v, dtype=np.float64)
    flat = x.reshape(-1, x.shape[-1])
    u = -np.sort(-flat, axis=1)
    css = np.cumsum(u, axis=1)
    j = np.arange(1, flat.shape[1] + 1)
    k = np.count_nonzero(u * j > css - 1.0, axis=1)
    theta = (css[np.arange(len(flat)), k - 1] - 1.0) / k
    return np.maximum(flat - theta[:, None], 0.0).reshape(x.shape)


def confusion_rates(counts: object, prior: float = 0.5) -> np.ndarray:
    """Row-normalised confusion ``C[t, p] = P(pred p | true t)``, with ``prior`` added to every cell first."""
    c = np.asarray(counts, dtype=np.float64) + prior
    return c / c.sum(axis=-1, keepdims=True)


def correct_shares(
    pred_shares: Sequence[float] | np.ndarray, rates: np.ndarray, iters: int = 300
) -> np.ndarray:
    """True label shares from predicted ones: least squares of ``rates^T x = pred_shares`` over the simplex.

    The exact solution when it lies on the simplex; otherwise projected gradient descent from its projection (an
    unconstrained solve can be far off when the predicted shares are unlike anything the confusion can produce).
    Works row-wise on stacks: ``pred_shares`` (..., 4) with ``rates`` (..., 4, 4).
    """
    p = np.asarray(pred_shares, dtype=np.float64)
    a = np.swapaxes(np.asarray(rates, dtype=np.float64), -1, -2)  # a @ x = p
    x = (np.linalg.pinv(a) @ p[..., None])[..., 0]
    inside = (x >= -1e-12).all(axis=-1) & (np.abs(x.sum(axis=-1) - 1.0) < 1e-9)
    if np.all(inside):
        return project_simplex(x)
    step = 1.0 / np.maximum((a * a).sum(axis=(-1, -2)), 1e-12)[..., None]
    y = project_simplex(x)
    for _ in range(iters):
        grad = (np.swapaxes(a, -1, -2) @ ((a @ y[..., None])[..., 0] - p)[..., None])[..., 0]
        y = project_simplex(y - step * grad)
    return np.where(inside[..., None], project_simplex(x), y)


def _correct_labels(raw: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Correct yes / no / both among themselves and keep the "other" share as labelled: GPT-4 says "other" for
    1-2 % of answers, so its confusion row rests on a few dozen answers and would otherwise swing the solution."""
    other = raw[..., 3:]
    sub = rates[..., :3, :3] / rates[..., :3, :3].sum(axis=-1, keepdims=True)
    scored = raw[..., :3] / np.maximum(raw[..., :3].sum(axis=-1, keepdims=True), 1e-12)
    return np.concatenate([correct_shares(scored, sub) * (1.0 - other), other], axis=-1)


def correct_split(observed: float, split_rates: np.ndarray) -> float:
    """Rogan-Gladen: ``(observed - fpr) / (tpr - fpr)`` clipped to [0, 1]; ``observed`` when ``tpr <= fpr``.

    ``split_rates`` is the row-normalised 2x2 prompt-level confusion (row 0: GPT-4 no split, row 1: split;
    column 1: the classifier's labels split).
    """
    fpr, tpr = float(split_rates[0, 1]), float(split_rates[1, 1])
    if tpr - fpr <= 1e-9:
        return float(observed)
    return float(np.clip((observed - fpr) / (tpr - fpr), 0.0, 1.0))


def _label_counts(groups: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-prompt counts of each predicted label, shape (prompts, 4); prompts without labels are dropped."""
    rows = []
    for g in groups:
        bad = sorted({lab for lab in g if lab not in LABELS}, key=str)
        if bad:
            raise ValueError(f"unknown stance label(s) {bad}; expected one of {list(LABELS)}")
        if len(g):
            rows.append([sum(1 for lab in g if lab == name) for name in LABELS])
    if not rows:
        raise ValueError("no prompt has any stance label")
    return np.array(rows, dtype=np.float64)


def _raw(n: np.ndarray) -> tuple[np.ndarray, float]:
    shares = (n / n.sum(axis=1, keepdims=True)).mean(axis=0)
    return shares, float(np.mean((n[:, 0] > 0) & (n[:, 1] > 0)))


def corrected_estimates(
    groups: Sequence[Sequence[str]], counts: object, split_counts: object, prior: float = 0.5
) -> dict:
    """Point estimates: raw and corrected label shares (mean over prompts) and yes/no split rates.

    ``groups`` holds one list of predicted labels per prompt (empty lists are skipped). ``counts`` is the 4x4
    answer-level confusion (rows GPT-4, columns classifier, order :data:`LABELS`) and ``split_counts`` the 2x2
    prompt-level split confusion, each possibly a stack over validation systems (then summed).
    """
    c, sc = _check(counts, len(LABELS)).sum(axis=0), _check(split_counts, 2).sum(axis=0)
    n = _label_counts(groups)
    raw, raw_split = _raw(n)
    true = _correct_labels(raw, confusion_rates(c, prior))
    return {
        "raw": dict(zip(LABELS, map(float, raw), strict=True)),
        "corrected": dict(zip(LABELS, map(float, true), strict=True)),
        "raw_split": raw_split,
        "corrected_split": correct_split(raw_split, confusion_rates(sc, prior)),
        "n_prompts": len(n),
    }


def stance_share_estimates(
    groups: Sequence[Sequence[str]],
    counts: object,
    split_counts: object,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    prior: float = 0.5,
) -> dict:
    """Corrected "both" share, label shares and yes/no split rate with bootstrap CIs.

    Returns ``{"both_share": {"mean", "ci", "raw", "n_prompts"}, "yes_no_split": {...}, "shares": {label:
    {"mean", "ci", "raw"}}}``. ``mean`` is the corrected point estimate (:func:`corrected_estimates`); ``ci`` the
    ``1 - alpha`` percentile interval of a bootstrap over prompts in which every replicate picks one validation
    system's matrices at random (when ``counts`` / ``split_counts`` are stacks of the same length) and redraws
    every row from ``Dirichlet(row + prior)``; ``raw`` the uncorrected value. Raises ``ValueError`` for unknown
    labels, bad matrices, or no labels at all.
    """
    point = corrected_estimates(groups, counts, split_counts, prior)
    c, sc = _check(counts, len(LABELS)), _check(split_counts, 2)
    if len(c) != len(sc):
        raise ValueError("counts and split_counts must stack the same number of systems")
    n = _label_counts(groups)
    rng = np.random.default_rng(seed)
    k = len(n)
    pick = rng.integers(0, len(c), size=n_boot)
    rates = rng.gamma(c[pick] + prior)  # a Dirichlet draw per row: gammas normalised by their row sum
    rates /= rates.sum(axis=-1, keepdims=True)
    split_rates = rng.gamma(sc[pick] + prior)
    split_rates /= split_rates.sum(axis=-1, keepdims=True)
    idx = rng.integers(0, k, size=(n_boot, k))
    per_prompt = n / n.sum(axis=1, keepdims=True)
    raw = per_prompt[idx].mean(axis=1)
    raw_split = ((n[:, 0] > 0) & (n[:, 1] > 0)).astype(float)[idx].mean(axis=1)
    shares = _correct_labels(raw, rates)
    fpr, tpr = split_rates[:, 0, 1], split_rates[:, 1, 1]
    informative = tpr - fpr > 1e-9
    splits = np.where(
        informative, np.clip((raw_split - fpr) / np.where(informative, tpr - fpr, 1.0), 0.0, 1.0), raw_split
    )
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

    def ci(v: np.ndarray) -> list[float]:
        return [float(np.percentile(v, lo)), float(np.percentile(v, hi))]

    out_shares = {
        lab: {"mean": point["corrected"][lab], "ci": ci(shares[:, i]), "raw": point["raw"][lab]}
        for i, lab in enumerate(LABELS)
    }
    return {
        "both_share": {**out_shares["both"], "n_prompts": k},
        "yes_no_split": {
            "mean": point["corrected_split"],
            "ci": ci(splits),
            "raw": point["raw_split"],
            "n_prompts": k,
        },
        "shares": out_shares,
    }


@lru_cache(maxsize=1)
def shipped_confusion() -> tuple[np.ndarray, np.ndarray]:
    """The shipped per-system ``(counts (systems, 4, 4), split_counts (systems, 2, 2))``."""
    data = json.loads(CONFUSION_FILE.read_text(encoding="utf-8"))
    if tuple(data.get("labels", ())) != LABELS:
        raise ValueError(f"{CONFUSION_FILE} has labels {data.get('labels')}, expected {list(LABELS)}")
    systems = list(data["counts"])
    c = _check([data["counts"][s] for s in systems], len(LABELS))
    sc = _check([data["split_counts"][s] for s in systems], 2)
    return c, sc


def summary_metrics(
    groups: Sequence[Sequence[str]],
    *,
    seed: int,
    n_boot: int,
    counts: object = None,
    split_counts: object = None,
) -> dict[str, dict]:
    """Summary entries for one system: ``stance_both_share_corrected`` and ``yes_no_split_corrected``, each
    ``{"mean", "ci", "n_prompts"}``, from :func:`stance_share_estimates` with the shipped confusion unless
    both ``counts`` and ``split_counts`` are given. Groups without labels are skipped; none at all gives ``{}``."""
    if not any(len(g) for g in groups):
        return {}
    if counts is None or split_counts is None:
        counts, split_counts = shipped_confusion()
    est = stance_share_estimates(groups, counts, split_counts, n_boot=n_boot, seed=seed)
    names = (("both_share", "stance_both_share_corrected"), ("yes_no_split", "yes_no_split_corrected"))
    return {
        name: {"mean": est[key]["mean"], "ci": est[key]["ci"], "n_prompts": est[key]["n_prompts"]}
        for key, name in names
    }
