"""``summary.json["similarity"]``: the inter-system similarity matrix and intra-system similarity histograms.

Computed by :func:`overtonlite.scoring.score_input` from the sentence vectors it already holds, per prompt set
(``"all"`` when the input names none): for every pair of systems the mean over shared prompts of the mean cosine
between their samples (:func:`overtonlite.metrics.homogeneity.similarity_matrix`; the diagonal is each system's mean
within-prompt pairwise cosine), and per system the histogram of its within-prompt pairwise cosines. Empty samples
have no vector and are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from overtonlite.metrics import homogeneity
from overtonlite.scoring.inputs import Group


def similarity_summary(
    groups: list[Group], vectors: dict[str, np.ndarray], systems: list[str]
) -> dict[str, Any]:
    """The ``similarity`` entry of summary.json for the scored ``groups``."""
    by_set: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for g in groups:
        rows = [vectors[t] for t in g.texts if t and t in vectors]
        if not rows:
            continue
        by_set.setdefault(g.prompt_set or "all", {}).setdefault(g.pid, {})[g.system] = np.stack(rows)
    sets: dict[str, Any] = {}
    for name, prompts in by_set.items():
        present = [s for s in systems if any(s in p for p in prompts.values())]
        matrix, counts = homogeneity.similarity_matrix(list(prompts.values()), present)
        hists = {}
        for s in present:
            vals = [homogeneity.within_cosines(p[s]) for p in prompts.values() if s in p]
            flat = np.concatenate(vals) if vals else np.zeros(0)
            hists[s] = {"counts": homogeneity.histogram(flat), "n_pairs": int(flat.size)}
        sets[name] = {"systems": present, "matrix": matrix, "n_prompts": counts, "histograms": hists}
    return {
        "measure": "mean cosine of sentence embeddings between samples, per prompt, then mean over prompts",
        "histogram_edges": list(homogeneity.HIST_EDGES),
        "sets": sets,
    }
