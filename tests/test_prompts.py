"""Prompt rendering, example selection and hints (pure functions, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from overtonlite.errors import UsageError
from overtonlite.prompts import (
    HUMAN_EXAMPLES,
    STOP,
    Example,
    cap_words,
    extractive_hint,
    keyword_hint,
    knn_neighbours,
    random_neighbours,
    render_base,
    render_urial,
    split_sentences,
    summarize_messages,
    tfidf_keywords,
)


def test_render_base_exact() -> None:
    assert (
        render_base("Why is the sky blue?") == "# Query:\n```\nWhy is the sky blue?\n```\n\n# Answer:\n```\n"
    )


def test_render_base_with_hint_exact() -> None:
    out = render_base("Q?", hint="A short summary.")
    assert out == "# Query:\n```\nQ?\n```\n\n# Summary:\n```\nA short summary.\n```\n\n# Answer:\n```\n"


def test_stop_strings() -> None:
    assert STOP == ("```", "# Query")


def test_render_urial_exact() -> None:
    examples = [Example("q1", "a1"), Example("q2", "a2")]
    out = render_urial("test?", examples, instructions="Be helpful.")
    assert out == (
        "# Instructions:\n\nBe helpful.\n\n"
        "# Query:\n```\nq1\n```\n\n# Answer:\n```\na1\n```\n\n"
        "# Query:\n```\nq2\n```\n\n# Answer:\n```\na2\n```\n\n"
        "# Query:\n```\ntest?\n```\n\n# Answer:\n```\n"
    )


def test_render_urial_with_hint_has_summary_blocks_everywhere() -> None:
    examples = [Example("q1", "a1", summary="s1")]
    out = render_urial("test?", examples, instructions="I.", hint="h")
    assert out == (
        "# Instructions:\n\nI.\n\n"
        "# Query:\n```\nq1\n```\n\n# Summary:\n```\ns1\n```\n\n# Answer:\n```\na1\n```\n\n"
        "# Query:\n```\ntest?\n```\n\n# Summary:\n```\nh\n```\n\n# Answer:\n```\n"
    )


def test_render_urial_hint_needs_example_summaries() -> None:
    with pytest.raises(ValueError, match="summary"):
        render_urial("t", [Example("q", "a")], hint="h")


def test_render_urial_caps_answers_and_neutralises_fences() -> None:
    ex = Example("q", "one two three four five six seven eight")
    out = render_urial("t", [ex], instructions="I.", answer_cap_words=3)
    assert "```\none two three\n```" in out
    fenced = Example("q", "use ```code``` here")
    out = render_urial("t", [fenced], instructions="I.")
    assert "use '''code''' here" in out
    # the only fences are the block delimiters: 2 per example block pair + the final opening fence
    assert out.count("```") == 4 + 2 + 1


def test_human_examples_render_with_default_instructions() -> None:
    out = render_urial("How do I sleep better?", HUMAN_EXAMPLES, answer_cap_words=120)
    assert out.startswith("# Instructions:\n\n")
    assert out.count("# Query:") == 4
    assert out.endswith("# Query:\n```\nHow do I sleep better?\n```\n\n# Answer:\n```\n")
    assert all(ex.summary for ex in HUMAN_EXAMPLES)
    hinted = render_urial("Q", HUMAN_EXAMPLES, hint="x", answer_cap_words=120)
    assert hinted.count("# Summary:") == 4


def test_cap_words() -> None:
    assert cap_words("a b c", None) == "a b c"
    assert cap_words("a b c", 5) == "a b c"
    assert cap_words("a b\nc d", 3) == "a b\nc"
    # falls back to the last sentence end when it lies in the second half of the kept text
    assert cap_words("One two three. Four five six seven", 5) == "One two three."
    # a numbered-list marker is not a sentence end
    assert (
        cap_words("Intro words here:\n1. First item done.\n2. Second", 8)
        == "Intro words here:\n1. First item done."
    )
    # a sentence end too early is not used
    assert cap_words("One. two three four five six", 5) == "One. two three four five"
    with pytest.raises(ValueError):
        cap_words("x", 0)


def test_knn_leave_one_out_order() -> None:
    emb = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.9, 0.1, 0.0],
            [0.0, 1.0, 0.0],
            [0.7, 0.7, 0.0],
            [0.0, 0.0, 1.0],
        ]
    )
    nb = knn_neighbours(emb, k=3)
    assert nb[0] == [1, 3, 2]  # most similar first, never itself
    assert nb[2] == [3, 1, 0]
    assert all(i not in row and len(row) == 3 for i, row in enumerate(nb))
    # unnormalised rows give the same neighbours
    assert knn_neighbours(emb * 5.0, k=3) == nb


def test_knn_ties_break_on_lower_index() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert knn_neighbours(emb, k=2)[0] == [1, 2]


def test_knn_needs_more_than_k_prompts() -> None:
    with pytest.raises(UsageError, match="more than k=3"):
        knn_neighbours(np.eye(3), k=3)


def test_random_neighbours_seeded_and_leave_one_out() -> None:
    ids = [f"p{i}" for i in range(6)]
    a = random_neighbours(ids, k=3, seed=1)
    assert a == random_neighbours(ids, k=3, seed=1)
    assert a != random_neighbours(ids, k=3, seed=2)
    assert all(i not in row and len(set(row)) == 3 for i, row in enumerate(a))
    with pytest.raises(UsageError):
        random_neighbours(ids[:2], k=2, seed=0)


def test_split_sentences_is_the_coverage_splitter() -> None:
    # Hints and coverage cut text the same way: list markers go, each list item is a sentence.
    text = "First point. Second one!\n1. A list item\n\n- another item\nDone?"
    assert split_sentences(text) == [
        "First point.",
        "Second one!",
        "A list item",
        "another item",
        "Done?",
    ]


class _AxisEmbedder:
    """Sentences mentioning 'tea' point one way, 'rain' another, everything else a third way."""

    def embed(self, texts):
        rows = []
        for t in texts:
            low = t.lower()
            rows.append([1.0 if "tea" in low else 0.0, 1.0 if "rain" in low else 0.0, 0.3])
        m = np.array(rows)
        return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_extractive_hint_picks_central_sentences_in_order() -> None:
    text = "Green tea is mild. It rained all day. Black tea is strong. Tea can be iced."
    hint = extractive_hint(text, _AxisEmbedder(), max_sentences=2)
    assert hint == "Green tea is mild. Black tea is strong."
    short = extractive_hint("Only one sentence.", _AxisEmbedder(), max_sentences=2)
    assert short == "Only one sentence."


def test_tfidf_keywords() -> None:
    doc = "Bananas are yellow. Bananas grow in warm places, and bananas are sweet."
    corpus = ["Apples are sweet and grow in cold places.", "Cherries are sweet and red."]
    kw = tfidf_keywords(doc, corpus, top=3)
    assert kw[0] == "bananas"
    assert "are" not in kw and "and" not in kw
    assert set(kw[1:]) <= {"yellow", "warm", "places", "grow"}
    assert keyword_hint(doc, corpus, top=2).startswith("Key terms: bananas, ")
    assert keyword_hint("the and of", corpus) == "Key terms: (none)"


def test_summarize_messages() -> None:
    msgs = summarize_messages(" Why? ", " Because. ")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    assert msgs[0]["content"].startswith("Question:\nWhy?\n\nAnswer:\nBecause.\n\n")
    assert "two or three sentences" in msgs[0]["content"]
