"""Lexical metrics: hand-computed values, properties, and the authors' LIMA-OE numbers when the data is present."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overtonlite.metrics.lexical import (
    content_words,
    distinct_n,
    jaccard,
    jaccard_to_reference,
    mean_pairwise_jaccard,
    ngram_entropy,
    word_count,
    word_tokenize,
)
from overtonlite.metrics.stopwords import ENGLISH_STOPWORDS
from overtonlite.paper import LEXICAL

# --- tokenisation -------------------------------------------------------------------------------------------


def test_stopword_list_is_nltks_179_words() -> None:
    assert len(ENGLISH_STOPWORDS) == 179
    assert {"i", "the", "don't", "wouldn't", "ma", "y"} <= ENGLISH_STOPWORDS
    assert all(w == w.lower() for w in ENGLISH_STOPWORDS)


def test_word_tokenize_splits_sentences_then_treebank_rules() -> None:
    assert word_tokenize("Hello, world. It's cold!") == ["Hello", ",", "world", ".", "It", "'s", "cold", "!"]
    # the sentence split is what detaches a sentence-final period inside the text
    assert word_tokenize("It is cold. Cold is bad.") == ["It", "is", "cold", ".", "Cold", "is", "bad", "."]
    assert word_tokenize("I don't know.") == ["I", "do", "n't", "know", "."]
    assert word_tokenize('He said "no" (twice).') == ["He", "said", "``", "no", "''", "(", "twice", ")", "."]
    assert word_tokenize("It costs 3.5 dollars.") == ["It", "costs", "3.5", "dollars", "."]


def test_word_tokenize_empty_and_type_error() -> None:
    assert word_tokenize("") == []
    assert word_tokenize("  \n\t ") == []
    with pytest.raises(TypeError):
        word_tokenize(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mean_pairwise_jaccard("not a list of texts")
    with pytest.raises(TypeError):
        distinct_n("not a list", 1)
    with pytest.raises(TypeError):
        mean_pairwise_jaccard(["fine", 3])  # type: ignore[list-item]


def test_word_tokenize_matches_nltk_word_tokenize_with_untrained_punkt() -> None:
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    punkt, treebank = PunktSentenceTokenizer(), NLTKWordTokenizer()
    texts = [
        "Dr. Smith said: \"Don't worry -- it's fine...\" [see p. 3]; cost: $4,000 (approx.).",
        "1. First, wash it.\n2. Then *dry* it!\n- bullet `code` «quote» “curly” ‘single’ — dash.",
        "Can't we gonna wanna 'tis? It's 5:30 p.m. in the U.S. Yes!",
    ]
    for text in texts:
        expected = [t for s in punkt.tokenize(text) for t in treebank.tokenize(s)]
        assert word_tokenize(text) == expected


_TRICKY = st.text(
    alphabet=st.sampled_from(
        list("aAnNtTsSmMdDiIoOeEcCgGwWly '\"`.,:;!?*-()[]{}<>@#$%&«»“”‘’„–—…\n\t0123456789")
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(_TRICKY)
def test_word_tokenize_equals_nltk_on_punctuation_heavy_text(text: str) -> None:
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    expected = [
        t for sent in PunktSentenceTokenizer().tokenize(text) for t in NLTKWordTokenizer().tokenize(sent)
    ]
    assert word_tokenize(text) == expected


# --- content words and Jaccard ------------------------------------------------------------------------------


def test_content_words_case_sensitive_stopwords_by_default() -> None:
    # "on", "the" are stop words; "The" is not (case-sensitive, as in the authors' code); "." is punctuation
    assert content_words("The cat sat on the mat.") == frozenset({"The", "cat", "sat", "mat"})
    assert content_words("The cat sat on the mat.", lowercase=True) == frozenset({"cat", "sat", "mat"})
    assert content_words("It is cold. Cold is bad.") == frozenset({"It", "cold", "Cold", "bad"})
    assert content_words("...!? -- ,") == frozenset()
    assert content_words("") == frozenset()
    # a token mixing letters and punctuation is kept
    assert content_words("e-mail") == frozenset({"e-mail"})


def test_jaccard_hand_values() -> None:
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(["a", "a"], ["a"]) == 1.0
    assert jaccard({"a"}, set()) == 0.0
    assert jaccard(set(), set()) is None


def test_mean_pairwise_jaccard_hand_values() -> None:
    texts = ["Cats chase mice.", "Dogs chase cats.", "Birds sing."]
    # {Cats, chase, mice} vs {Dogs, chase, cats}: 1/5; the other two pairs share nothing
    assert mean_pairwise_jaccard(texts) == pytest.approx((1 / 5 + 0 + 0) / 3)
    # lower-cased: {cats, chase, mice} vs {dogs, chase, cats}: 2/4
    assert mean_pairwise_jaccard(texts, lowercase=True) == pytest.approx((1 / 2 + 0 + 0) / 3)


def test_mean_pairwise_jaccard_skips_pairs_with_two_empty_sets() -> None:
    # ("", "the of.") has two empty sets and is skipped; the other two pairs are 0
    assert mean_pairwise_jaccard(["", "the of.", "Cats sing."]) == 0.0
    assert mean_pairwise_jaccard(["", "the of.", "..."]) is None
    assert mean_pairwise_jaccard(["Only one sample."]) is None
    assert mean_pairwise_jaccard([]) is None
    assert mean_pairwise_jaccard(["Same words here.", "Same words here."]) == 1.0


def test_jaccard_to_reference() -> None:
    assert jaccard_to_reference(["Cats sing.", ""], "Cats dance.") == [pytest.approx(1 / 3), 0.0]
    assert jaccard_to_reference([""], "") == [None]
    assert jaccard_to_reference([], "Cats dance.") == []


def test_word_count() -> None:
    assert word_count("  a b\tc\n d ") == 4
    assert word_count("") == 0
    assert word_count("don't stop") == 2


def test_distinct_n_equals_its_pooled_count_definition() -> None:
    import random
    from collections import Counter

    from overtonlite.metrics.lexical import word_tokenize

    rng = random.Random(5)
    vocab = ["The", "the", "cat", "sat", ",", "on", "mat", "Mat", "."]
    for _ in range(40):
        texts = [
            " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))) for _ in range(rng.randint(1, 5))
        ]
        for n in (1, 2, 3):
            for lower in (True, False):
                counts: Counter = Counter()
                for t in texts:
                    toks = [w.lower() if lower else w for w in word_tokenize(t)]
                    counts.update(zip(*(toks[i:] for i in range(n)), strict=False))
                total = sum(counts.values())
                expected = len(counts) / total if total else None
                assert distinct_n(texts, n, lowercase=lower) == expected


def test_distinct_n_and_entropy_hand_values() -> None:
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert distinct_n(["a b", "a b"], 2) == 0.5  # n-grams never cross texts
    assert distinct_n(["A b", "a B"], 1) == 0.5
    assert distinct_n(["A b", "a B"], 1, lowercase=False) == 1.0
    assert distinct_n(["a"], 2) is None
    assert distinct_n([], 1) is None
    assert ngram_entropy(["a b a b"], 1) == pytest.approx(1.0)
    assert ngram_entropy(["a a"], 1) == 0.0
    assert ngram_entropy([""], 1) is None
    with pytest.raises(ValueError):
        distinct_n(["a b"], 0)
    with pytest.raises(ValueError):
        ngram_entropy(["a b"], -1)


# --- properties ---------------------------------------------------------------------------------------------

_texts = st.text(max_size=300)


@settings(max_examples=150, deadline=None)
@given(st.lists(_texts, max_size=6), st.booleans())
def test_pairwise_jaccard_is_none_or_in_unit_interval(texts: list[str], lowercase: bool) -> None:
    value = mean_pairwise_jaccard(texts, lowercase=lowercase)
    assert value is None or (0.0 <= value <= 1.0 and not math.isnan(value))
    if len(texts) < 2:
        assert value is None


@settings(max_examples=100, deadline=None)
@given(_texts, st.integers(min_value=2, max_value=5))
def test_identical_samples_give_one_or_none(text: str, n: int) -> None:
    value = mean_pairwise_jaccard([text] * n)
    if content_words(text):
        assert value == 1.0
    else:
        assert value is None


@settings(max_examples=100, deadline=None)
@given(st.lists(_texts, max_size=5), st.integers(min_value=1, max_value=4))
def test_distinct_n_and_entropy_ranges(texts: list[str], n: int) -> None:
    d = distinct_n(texts, n)
    assert d is None or 0.0 < d <= 1.0
    h = ngram_entropy(texts, n)
    assert (h is None) == (d is None)
    assert h is None or h >= 0.0


@settings(max_examples=100, deadline=None)
@given(_texts)
def test_tokens_and_content_words_are_consistent(text: str) -> None:
    toks = word_tokenize(text)
    assert all(t and not t.isspace() for t in toks)
    words = content_words(text)
    assert words <= set(toks)
    assert not words & ENGLISH_STOPWORDS
    assert content_words(text, lowercase=True) <= {t.lower() for t in toks}
    assert word_count(text) == len(text.split())


def test_very_long_texts_are_fast_and_sane() -> None:
    long_a = "The quick brown fox jumps over the lazy dog. " * 3000
    long_b = "Ünïcödé wörds ünd emoji 🙂 répétés sans fin " * 3000
    value = mean_pairwise_jaccard([long_a, long_b, long_a])
    assert value == pytest.approx((0 + 0 + 1) / 3)
    assert word_count(long_b) == 8 * 3000
    assert distinct_n([long_a], 1) == pytest.approx(9 / (10 * 3000))  # 8 words + "." types, 10 tokens each


# --- the authors' LIMA-OE outputs (paper-protocol §3.1) -------------------------------------------------------


def test_reference_lima_oe_jaccard_and_length(reference_dir) -> None:
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(reference_dir / "lima-oe" / "responses.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["system"] not in LEXICAL:
                continue
            samples = [s.strip() for s in rec["samples"]]
            per[rec["system"]]["default"].append(mean_pairwise_jaccard(samples))
            per[rec["system"]]["lower"].append(mean_pairwise_jaccard(samples, lowercase=True))
            per[rec["system"]]["words"].extend(word_count(s) for s in samples)
    ours = {}
    for system, (j_default, j_lower, words) in LEXICAL.items():
        d = per[system]
        assert len(d["default"]) == 50
        got_default = sum(d["default"]) / 50
        got_lower = sum(d["lower"]) / 50
        got_words = sum(d["words"]) / len(d["words"])
        assert got_default == pytest.approx(j_default, abs=0.005), system
        assert got_lower == pytest.approx(j_lower, abs=0.005), system
        assert abs(got_words - words) <= 1.0, system
        ours[system] = got_default
    paper_rank = sorted(LEXICAL, key=lambda s: LEXICAL[s][0])
    assert sorted(ours, key=ours.get) == paper_rank
