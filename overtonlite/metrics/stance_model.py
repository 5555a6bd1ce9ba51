"""Stance with sentence embeddings: the cue features of :mod:`overtonlite.metrics.stance` plus one embedding term.

The embedding variant scores each response with the same 34 cue features and, in addition, the vector
``embed(opening sentence) - embed(question)`` from the default sentence embedder (all-MiniLM-L6-v2, mean-pooled and
L2-normalised). Subtracting the question removes most of the topic from the opening sentence, so what is left is
mostly how the answer opens (restating, negating, hedging). The 34 + 384 inputs go into one multinomial logistic
regression (yes / no / both, L2-regularised, fitted in plain numpy by ``benchmarks/stance_calibration.py --fit
--embedding`` on all four GPT-4-labelled ConflictingQA systems); its weights are frozen in ``stance_weights.npz``
(numbers only). The short-answer and refusal rules of :func:`overtonlite.metrics.stance.classify_stance` apply first, as in
the cue-only classifier.

The weights belong to one embedding space: any other embedder (by name, or by vector width) falls back to the
cue-only classifier rather than giving meaningless scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from overtonlite.metrics import stance as _st

__all__ = ["EMBEDDER_NAME", "WEIGHTS_FILE", "load_weights", "embedding_inputs", "classify_stances"]

EMBEDDER_NAME = "all-minilm-l6-v2"
"""Registry name of the embedder the frozen weights were fitted with."""

WEIGHTS_FILE = Path(__file__).with_name("stance_weights.npz")
"""Frozen weights: ``w_cue`` (34 x 3), ``w_emb`` (dim x 3), ``bias`` (3,); columns yes, no, both."""


@lru_cache(maxsize=1)
def load_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frozen ``(w_cue, w_emb, bias)`` arrays of the embedding variant (read once)."""
    with np.load(WEIGHTS_FILE, allow_pickle=False) as z:
        w_cue, w_emb, bias = (np.asarray(z[k], dtype=np.float64) for k in ("w_cue", "w_emb", "bias"))
    if w_cue.shape != (len(_st.FEATURES), 3) or bias.shape != (3,) or w_emb.ndim != 2 or w_emb.shape[1] != 3:
        raise ValueError(f"{WEIGHTS_FILE} has unexpected shapes {w_cue.shape}, {w_emb.shape}, {bias.shape}")
    return w_cue, w_emb, bias


def _opening(text: str) -> str:
    sents = _st._sentences(text)
    return sents[0] if sents else ""


def embedding_inputs(
    questions: Sequence[str], responses: Sequence[str], embedder: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Cue matrix (n x 34, 0/1) and embedding term (n x dim) ``embed(opening sentence) - embed(question)``.

    Each distinct text is embedded once, in one batch (the embedder may cache further).
    """
    names = [n for n, _ in _st.FEATURES]
    cues = np.array(
        [
            [float(f[n]) for n in names]
            for f in (_st.stance_features(q, r) for q, r in zip(questions, responses, strict=True))
        ],
        dtype=np.float64,
    ).reshape(len(responses), len(names))
    openings = [_opening(r.strip()) for r in responses]
    uniq = list(dict.fromkeys([*questions, *openings]))
    vecs = np.asarray(embedder.embed(uniq), dtype=np.float64) if uniq else np.zeros((0, 1))
    row = {t: i for i, t in enumerate(uniq)}
    if not len(responses):
        return cues, np.zeros((0, vecs.shape[1] if vecs.ndim == 2 else 0))
    emb = vecs[[row[t] for t in openings]] - vecs[[row[q] for q in questions]]
    return cues, emb


def _usable(embedder: Any) -> bool:
    name = getattr(embedder, "name", None)
    return name is None or str(name).lower() == EMBEDDER_NAME


def classify_stances(
    questions: Sequence[str], responses: Sequence[str], *, embedder: Any = None
) -> list[str]:
    """Label many responses (``questions[i]`` is the question ``responses[i]`` answers).

    With ``embedder`` (an object with ``embed(texts) -> array`` of L2-normalised vectors, e.g.
    :class:`overtonlite.backends.onnx.OnnxEmbedder` for all-MiniLM-L6-v2), uses the embedding variant described in
    the module docstring; texts are embedded in one batch. Without one, or with an embedder of another model or
    width, every response gets :func:`overtonlite.metrics.stance.classify_stance` (cue-only). Raises
    ``TypeError`` for non-string items and ``ValueError`` when the two sequences differ in length.
    """
    questions, responses = list(questions), list(responses)
    if len(questions) != len(responses):
        raise ValueError(f"questions and responses differ in length: {len(questions)} != {len(responses)}")
    checked = [_st._check(q, r) for q, r in zip(questions, responses, strict=True)]
    if embedder is None or not _usable(embedder):
        return [_st.classify_stance(q, t) for q, t in checked]
    labels: list[str | None] = [None] * len(checked)
    todo: list[int] = []
    for i, (q, t) in enumerate(checked):
        if len(t.split()) < 3:
            labels[i] = _st._short_label(t)
        elif _st._is_refusal(q, t):
            labels[i] = "other"
        else:
            todo.append(i)
    if todo:
        w_cue, w_emb, bias = load_weights()
        cues, emb = embedding_inputs([checked[i][0] for i in todo], [checked[i][1] for i in todo], embedder)
        if emb.shape[1] != w_emb.shape[0]:
            for i in todo:
                labels[i] = _st.classify_stance(*checked[i])
        else:
            scores = cues @ w_cue + emb @ w_emb + bias
            for i, k in zip(todo, np.argmax(scores, axis=1), strict=True):
                labels[i] = _st._SCORED[int(k)]
    return [lab if lab is not None else "other" for lab in labels]
