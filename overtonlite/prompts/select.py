"""Example selection for in-context alignment: fixed, random (seeded) and kNN over prompt embeddings.

Random and kNN selection are leave-one-out over the prompt set itself (the paper's transductive pool): the
examples for a test prompt are other prompts of the same set, each answered by the aligned model's sample 0.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from overtonlite.config import derive_seed
from overtonlite.errors import UsageError

SELECTIONS = ("fixed", "random", "knn")


def _check_pool(n_items: int, k: int) -> None:
    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    if n_items <= k:
        raise UsageError(
            f"example selection over the prompt set needs more than k={k} prompts (leave-one-out), got {n_items}"
        )


def knn_neighbours(embeddings: np.ndarray, *, k: int) -> list[list[int]]:
    """For each row, the indices of its ``k`` nearest other rows by cosine, most similar first.

    Leave-one-out: a row is never its own neighbour. Ties break on the lower index, so the order is deterministic.
    Rows need not be normalised. Raises ``UsageError`` when there are not more than ``k`` rows.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise UsageError(f"embeddings must be a 2-D array, got shape {emb.shape}")
    _check_pool(emb.shape[0], k)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = emb / np.where(norms == 0, 1.0, norms)
    sims = unit @ unit.T
    out: list[list[int]] = []
    for i in range(emb.shape[0]):
        row = sims[i].copy()
        row[i] = -np.inf
        # stable sort on -similarity keeps lower indices first among equal similarities
        order = np.argsort(-row, kind="stable")
        out.append([int(j) for j in order[:k]])
    return out


def random_neighbours(ids: Sequence[str], *, k: int, seed: int) -> list[list[int]]:
    """For each id, ``k`` other indices drawn without replacement, seeded by (seed, id): reproducible."""
    _check_pool(len(ids), k)
    out: list[list[int]] = []
    for i, pid in enumerate(ids):
        rng = random.Random(derive_seed(seed, pid, 0, salt="random-examples"))
        others = [j for j in range(len(ids)) if j != i]
        out.append(rng.sample(others, k))
    return out
