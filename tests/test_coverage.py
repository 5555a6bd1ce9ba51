"""Coverage, the missing-information proxy and sentence splitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overtonlite.metrics import coverage as cv
from overtonlite.metrics.sentences import split_sentences


def _unit(deg: float) -> list[float]:
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def test_coverage_with_known_tau():
    ref = np.array([_unit(0), _unit(90)])
    # best cosines: 1.0, cos(30)=0.866, cos(45)=0.707, cos(60) to 0 or 30 to 90 -> 0.866
    alt = np.array([_unit(0), _unit(30), _unit(45), _unit(120)])
    best = cv.best_match(alt, ref)
    assert best.tolist() == pytest.approx(
        [1.0, math.cos(math.radians(30)), math.cos(math.radians(45)), math.cos(math.radians(30))]
    )
    assert cv.coverage(alt, ref, tau=0.8) == pytest.approx(3 / 4)
    assert cv.coverage(alt, ref, tau=0.7) == pytest.approx(1.0)
    assert cv.coverage(alt, ref, tau=0.95) == pytest.approx(1 / 4)


def test_coverage_edge_cases():
    assert cv.coverage(np.zeros((0, 2)), np.eye(2)) is None  # nothing to cover
    assert cv.coverage(np.eye(2), np.zeros((0, 2))) == 0.0  # an empty reference covers nothing
    with pytest.raises(ValueError):
        cv.coverage(np.zeros(3), np.eye(3))


def test_missing_proxy_mapping():
    cuts = (0.8, 0.6, 0.4, 0.2)
    assert [cv.missing_proxy(c, cuts) for c in (1.0, 0.8, 0.7, 0.5, 0.3, 0.1, 0.0)] == [1, 1, 2, 3, 4, 5, 5]
    assert cv.missing_proxy(None) is None
    assert cv.missing_proxy(1.0) == 1 and cv.missing_proxy(0.0) == 5


def test_default_cuts_are_descending():
    assert list(cv.MISSING_CUTS) == sorted(cv.MISSING_CUTS, reverse=True)
    assert 0.0 < cv.DEFAULT_TAU < 1.0


def test_calibrate_cuts_reproduces_distribution():
    cov = np.linspace(1.0, 0.0, 10)
    scores = [1, 1, 1, 1, 2, 2, 3, 4, 5, 5]
    cuts = cv.calibrate_cuts(cov, scores)
    proxy = [cv.missing_proxy(c, cuts) for c in cov]
    assert proxy == scores
    with pytest.raises(ValueError):
        cv.calibrate_cuts([], [])


@settings(max_examples=80, deadline=None)
@given(st.floats(0, 1))
def test_proxy_is_monotone(c):
    assert cv.missing_proxy(c) in {1, 2, 3, 4, 5}
    assert cv.missing_proxy(min(1.0, c + 0.1)) <= cv.missing_proxy(c)


def test_split_sentences_markdown_and_abbreviations():
    text = (
        "Dr. Lee tested three pots. The clay one, e.g. the red pot, kept water cool!\n\n"
        "1. **First** point here.\n- second point\n* third point\n```\n## A heading\n---"
    )
    assert split_sentences(text) == [
        "Dr. Lee tested three pots.",
        "The clay one, e.g. the red pot, kept water cool!",
        "First point here.",
        "second point",
        "third point",
        "A heading",
    ]


def test_split_sentences_empty_and_unicode():
    assert split_sentences("") == []
    assert split_sentences("   \n\n ") == []
    assert split_sentences("Ça va? Très bien. 日本語の文です。") == [
        "Ça va?",
        "Très bien.",
        "日本語の文です。",
    ]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_split_sentences_never_crashes(text):
    out = split_sentences(text)
    assert all(s and s == s.strip() for s in out)


def test_length_adjusted_coverage_by_hand():
    # coverage 0.5 of a 99-word alternative: 0.5 - 0.1252 * ln(100)
    assert cv.length_adjusted_coverage(0.5, 99) == pytest.approx(0.5 - 0.1252 * math.log(100))
    assert cv.length_adjusted_coverage(0.5, 0) == 0.5
    assert cv.length_adjusted_coverage(None, 10) is None
    with pytest.raises(ValueError):
        cv.length_adjusted_coverage(0.5, -1)
    # the same coverage reads as more missing information for a longer alternative
    short, long = cv.length_adjusted_coverage(0.3, 20), cv.length_adjusted_coverage(0.3, 400)
    assert cv.missing_proxy(short, cv.ADJUSTED_CUTS) < cv.missing_proxy(long, cv.ADJUSTED_CUTS)
    assert list(cv.ADJUSTED_CUTS) == sorted(cv.ADJUSTED_CUTS, reverse=True)
