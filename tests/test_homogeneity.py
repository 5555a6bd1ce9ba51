"""Cross-system homogeneity: hand-computed cosines, matrix and histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from overtonlite.metrics import homogeneity as H


def test_cross_and_within_cosines() -> None:
    assert H.cross_cosine(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [2.0, 0.0]])) == pytest.approx(0.5)
    assert H.cross_cosine(np.zeros((0, 2)), np.array([[1.0, 0.0]])) is None
    w = H.within_cosines(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert w.tolist() == pytest.approx([0.0, 1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert H.within_cosines(np.array([[1.0, 0.0]])).size == 0


def test_similarity_matrix_averages_over_prompts() -> None:
    p1 = {"A": np.array([[1.0, 0.0], [1.0, 0.0]]), "B": np.array([[0.0, 1.0]])}  # within A 1, cross 0
    p2 = {"A": np.array([[1.0, 0.0], [0.0, 1.0]]), "B": np.array([[1.0, 0.0]])}  # within A 0, cross 0.5
    matrix, counts = H.similarity_matrix([p1, p2], ["A", "B"])
    assert matrix[0][0] == pytest.approx(0.5) and counts[0][0] == 2
    assert matrix[0][1] == pytest.approx(0.25) and matrix[1][0] == pytest.approx(0.25) and counts[0][1] == 2
    assert matrix[1][1] is None and counts[1][1] == 0  # B never has two samples for one prompt


def test_histogram_clips_into_the_end_bins() -> None:
    assert H.histogram([-0.5, 0.0, 0.03, 0.99, 1.0, 2.0], [0.0, 0.5, 1.0]) == [3, 3]
    assert len(H.histogram([0.2])) == len(H.HIST_EDGES) - 1
    assert sum(H.histogram([0.2, 0.7, 0.7])) == 3
