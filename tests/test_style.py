"""Style statistics: lists, refusals, degenerate samples."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overtonlite.metrics.style import (
    has_bullet_list,
    has_numbered_list,
    is_degenerate,
    is_refusal,
    style_stats,
)
from overtonlite.paper import NUMBERED_LIST_RATE


def test_numbered_list() -> None:
    assert has_numbered_list("Tips:\n1. Sleep well.\n2. Eat well.")
    assert has_numbered_list("1. a\nsome text in between\n  2. b")  # indentation and gaps are fine
    assert not has_numbered_list("1. Only one item.")
    assert not has_numbered_list("2. b\n3. c")  # must start at 1
    assert not has_numbered_list("1. a\n3. c")  # out of order
    assert not has_numbered_list("1. a\n1. b")
    assert not has_numbered_list("In 1. and 2. we see")  # not at line starts
    assert not has_numbered_list("1.5 litres\n2.5 litres")  # "1." must be followed by a space
    assert has_numbered_list("1. x\n1. a\n2. b")  # a new "1." restarts the count


def test_bullet_list() -> None:
    assert has_bullet_list("- a\n- b")
    assert has_bullet_list("* a\n  * b")
    assert has_bullet_list("• a\n• b")
    assert not has_bullet_list("- only one")
    assert not has_bullet_list("-a\n-b")  # a space must follow the marker
    assert not has_bullet_list("a - b\nc - d")


def test_refusal() -> None:
    assert is_refusal("As an AI language model, I do not hold opinions.")
    assert is_refusal("I’m not able to help with that.")  # curly apostrophe
    assert is_refusal("I CANNOT PROVIDE medical advice.")
    assert not is_refusal("Here are three ways to improve your sleep.")
    assert not is_refusal("")


def test_degenerate() -> None:
    assert is_degenerate("")
    assert is_degenerate("   \n ")
    assert is_degenerate("Yes.")
    assert is_degenerate("Two words")
    assert not is_degenerate("Three words here")
    assert is_degenerate("the end the end the end the end the end the end")  # repeated 4-grams
    # one line repeated: 6 of 10 words
    assert is_degenerate("Click here.\nClick here.\nClick here.\nRead more about it")
    assert not is_degenerate("Click here.\nClick here.\nThen read the full article about gardening today.")
    assert not is_degenerate(
        "Sleep is important. Try to go to bed at the same time each night, keep the room dark, and avoid "
        "screens for an hour before bed."
    )


def test_style_stats_hand_values() -> None:
    texts = ["1. a\n2. b", "- x\n- y", "As an AI, I cannot provide that.", ""]
    s = style_stats(texts)
    assert s == {
        "list_rate": 0.5,
        "numbered_rate": 0.25,
        "bullet_rate": 0.25,
        "refusal_rate": 0.25,
        "degenerate_rate": 0.25,
    }
    empty = style_stats([])
    assert set(empty) == set(s) and all(v is None for v in empty.values())
    with pytest.raises(TypeError):
        style_stats([None])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        style_stats("a single string")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=400), max_size=6))
def test_style_properties(texts: list[str]) -> None:
    s = style_stats(texts)
    for key in ("list_rate", "numbered_rate", "bullet_rate", "refusal_rate", "degenerate_rate"):
        assert s[key] is None if not texts else 0.0 <= s[key] <= 1.0
    for t in texts:
        if len(t.split()) < 3:
            assert is_degenerate(t)


def test_very_long_text() -> None:
    text = "\n".join(f"{i}. Item number {i} is about ünïcode 🙂" for i in range(1, 5001))
    assert has_numbered_list(text)
    assert not is_degenerate(text)
    assert is_degenerate("spam " * 100_000)


def test_reference_numbered_list_rates(reference_dir) -> None:
    texts = defaultdict(list)
    with open(reference_dir / "lima-oe" / "responses.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["system"] in NUMBERED_LIST_RATE:
                texts[rec["system"]].extend(s.strip() for s in rec["samples"])
    for system, expected in NUMBERED_LIST_RATE.items():
        assert style_stats(texts[system])["numbered_rate"] == pytest.approx(expected, abs=0.01), system
