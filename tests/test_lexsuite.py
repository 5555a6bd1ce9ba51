"""The lexical suite: hand-computed values and reference values computed with the ``diversity`` package.

Reference values: diversity 0.3.1 (its compression.py, homogenization.py, self_repetition.py and
ngram_diversity.py run on the texts below, with rouge-score 0.1.2 and nltk 3.10.4, in a throwaway venv; the package
functions round to 3 decimals except self_repetition_score).
"""

from __future__ import annotations

import gzip
import math
import random
import zlib

import pytest

from overtonlite.metrics import lexsuite as L

A = [
    "The cat sat on the mat and looked at the door.",
    "A cat sat on a mat, then it looked at the door!",
    "Dogs bark loudly at night when the moon is full.",
    "The cat sat on the mat and looked at the window.",
]
B = [
    "Drink water, rest, and take paracetamol for the fever.\nSee a doctor if it lasts.",
    "Rest and drink plenty of water; paracetamol helps with the fever.",
    "Honey and lemon tea soothe a sore throat. Rest is important too.",
    "Café owners say: rest, rest, rest — and drink water, water, water.",
]
# diversity 0.3.1 on A and B (see the module docstring)
LIBRARY = {
    "A": {
        "compression_ratio": 1.223,
        "homogenization_rougel": 0.463,
        "self_repetition": 1.0397207708399179,
        "ngram_diversity": 2.857,
    },
    "B": {
        "compression_ratio": 1.249,
        "homogenization_rougel": 0.204,
        "self_repetition": 0.0,
        "ngram_diversity": 3.734,
    },
}


@pytest.mark.parametrize("name,texts", [("A", A), ("B", B)])
def test_library_reference_values(name: str, texts: list[str]) -> None:
    ref = LIBRARY[name]
    assert round(L.compression_ratio(texts, library_compatible=True), 3) == ref["compression_ratio"]
    assert round(L.homogenization_rougel(texts), 3) == ref["homogenization_rougel"]
    assert L.self_repetition(texts) == pytest.approx(ref["self_repetition"], abs=1e-12)
    assert round(L.ngram_diversity(texts), 3) == ref["ngram_diversity"]


def test_rouge_l_matches_rouge_score_pairs() -> None:
    # rouge_score 0.1.2 RougeScorer(['rougeL']).score(x, y).fmeasure
    a = [L.rouge_tokens(t) for t in A]
    b = [L.rouge_tokens(t) for t in B]
    assert L.rouge_l_f(a[0], a[1]) == pytest.approx(0.6956521739130435, abs=1e-12)
    assert L.rouge_l_f(a[0], a[3]) == pytest.approx(0.9090909090909091, abs=1e-12)
    assert L.rouge_l_f(b[0], b[1]) == pytest.approx(0.3846153846153846, abs=1e-12)
    assert L.rouge_l_f(b[0], b[3]) == pytest.approx(0.15384615384615383, abs=1e-12)


def test_rouge_tokens_like_rouge_score() -> None:
    assert L.rouge_tokens("Café owners: don't-stop 3.5!") == ("caf", "owners", "don", "t", "stop", "3", "5")


def _lcs_dp(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def test_bit_parallel_lcs_equals_dynamic_programming() -> None:
    rng = random.Random(7)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 90))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        assert L.lcs_length(a, b) == _lcs_dp(a, b)
    assert L.lcs_length(list("abcbdab"), list("bdcaba")) == 4  # the textbook example


def test_lcs_is_symmetric_and_homogenization_is_the_pairwise_rouge_l_mean() -> None:
    rng = random.Random(11)
    for _ in range(60):
        words = [f"w{rng.randint(0, 12)}" for _ in range(rng.randint(0, 300))]
        texts = [" ".join(words[rng.randint(0, 40) : rng.randint(0, 300)]) for _ in range(rng.randint(2, 6))]
        toks = [L.rouge_tokens(t) for t in texts]
        for a in toks:
            for b in toks:
                assert L.lcs_length(a, b) == L.lcs_length(b, a)
        pairs = [L.rouge_l_f(toks[i], toks[j]) for i in range(len(toks)) for j in range(i + 1, len(toks))]
        assert L.homogenization_rougel(texts) == math.fsum(pairs) / len(pairs)  # the same floats, exactly


def test_homogenization_hand_computed() -> None:
    # LCS("a b c", "a c") = 2: P = 2/3, R = 1, F = 0.8; "d" shares nothing -> mean over 3 pairs = 0.8 / 3
    assert L.homogenization_rougel(["a b c", "a c", "d"]) == pytest.approx(0.8 / 3)
    assert L.homogenization_rougel(["x y", "x y"]) == 1.0
    # disjoint texts: 0.0 (the package returns 1.0 here, see the module docstring)
    assert L.homogenization_rougel(["a", "b"]) == 0.0
    assert L.homogenization_rougel(["only one"]) is None


def test_self_repetition_hand_computed() -> None:
    # bigrams: {ab, bc}, {ab, bd}, {xy}; "ab" is in one other text -> log 2, log 2, log 1
    assert L.self_repetition(["a b c", "a b d", "x y"], n=2) == pytest.approx(2 * math.log(2) / 3)
    assert L.self_repetition([]) is None


def test_ngram_diversity_sums_over_n() -> None:
    # "a b a b": 1-grams 2/4, 2-grams 2/3, 3-grams 2/2, 4-grams 1/1
    assert L.ngram_diversity(["a b", "a b"]) == pytest.approx(0.5 + 2 / 3 + 1 + 1)
    assert L.ngram_diversity(["a b c"]) is None  # fewer than 4 tokens: no 4-gram
    assert L.ngram_diversity([""]) is None


def test_compression_ratio_header_is_the_plain_18_bytes() -> None:
    texts = ["the same words " * 20, "the same words again"]
    raw = " ".join(texts).encode("utf-8")
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = co.compress(raw) + co.flush()
    assert L.compression_ratio(texts) == pytest.approx(len(raw) / (len(deflated) + 18))
    assert len(gzip.compress(raw, 9, mtime=0)) == len(deflated) + 18
    assert L.compression_ratio(["", ""]) is not None  # a single space
    assert L.compression_ratio([]) is None
