"""A lexical diversity suite beside the paper's Jaccard: compression ratio, homogenization (mean pairwise ROUGE-L
F), self-repetition and n-gram diversity, with the definitions of Shaib et al.'s ``diversity`` package (0.3.1).

Written here rather than imported: ``diversity`` requires sentence-transformers, transformers and torch even for
its lexical scores, far heavier than the whole CPU install of overtonlite. Each function states where it follows
the package and where (and why) it departs from it; the tests check values computed with the package.

* :func:`compression_ratio`: UTF-8 bytes of the texts joined with single spaces, divided by the size of their
  gzip (level 9) compression. **Header**: the compressed size includes gzip's 18-byte header and trailer, with no
  file name and mtime 0 (``gzip.compress``). The package writes ``gzip.compress(joined)`` *again* through
  ``gzip.GzipFile('.../compressed.gz')``, i.e. it compresses twice and its header carries the 10-byte file name
  "compressed"; ``library_compatible=True`` reproduces that byte count exactly. Higher = more repetitive.
* :func:`homogenization_rougel`: mean over ordered pairs (i != j) of ROUGE-L F with the ``rouge_score`` tokeniser
  (lower-case, every run of characters outside [a-z0-9] is a separator, no stemming). The package rounds to 3
  decimals and returns 1.0 when every pair scores 0 (a guard meant for identical texts that fires for disjoint
  ones); here the value is unrounded and disjoint texts give 0.0.
* :func:`self_repetition`: Salkar et al.'s score as the package computes it: for each text, the sum over its
  distinct white-space 4-grams of the number of *other* texts containing that 4-gram; the score is the mean over
  texts of ``log(sum + 1)`` (natural log).
* :func:`ngram_diversity`: **the sum** (not the mean) over n = 1..4 of unique n-grams / all n-grams, as the
  package computes it: the texts are joined with single spaces and split on single spaces, so n-grams span the
  boundary between two texts and a line break does not separate words. Range (0, 4]; divide by 4 for a mean.

All functions are pure and take the group's texts in order. ROUGE-L uses a bit-parallel LCS (Allison-Dix /
Hyyroe), exact and fast enough for the default ``score`` (measured in the README).
"""

from __future__ import annotations

import functools
import gzip
import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "rouge_tokens",
    "lcs_length",
    "rouge_l_f",
    "compression_ratio",
    "homogenization_rougel",
    "self_repetition",
    "ngram_diversity",
]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=65536)
def rouge_tokens(text: str) -> tuple[str, ...]:
    """The ``rouge_score`` default tokens (no stemmer): lower-case, split on every run of non-[a-z0-9]."""
    return tuple(t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t)


def _positions(seq: Sequence[str]) -> dict[str, int]:
    """Token -> bit mask of the positions where it occurs in ``seq`` (the bit-parallel LCS's match masks)."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(seq):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def _lcs_bits(masks: dict[str, int], width: int, other: Sequence[str]) -> int:
    """LCS length of the sequence whose :func:`_positions` are ``masks`` (``width`` tokens) and ``other``: one
    step per token of ``other`` on a ``width``-bit vector (Allison-Dix / Hyyro), exact for any two lengths."""
    full = (1 << width) - 1
    s = full
    for tok in other:
        m = masks.get(tok)
        if m is None:
            continue
        u = s & m
        s = ((s + u) | (s - u)) & full
    return width - s.bit_count()


def _lcs(
    a: Sequence[str], b: Sequence[str], masks_a: dict[str, int] | None, masks_b: dict[str, int] | None
) -> int:
    """LCS length of two non-empty sequences, with their :func:`_positions` when already built."""
    if len(a) > len(b):  # Python's cost is per step: step through the shorter one, bits of the longer
        a, b, masks_a, masks_b = b, a, masks_b, masks_a
    return _lcs_bits(masks_b if masks_b is not None else _positions(b), len(b), a)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, exact)."""
    if not a or not b:
        return 0
    return _lcs(a, b, None, None)


def _f_from_lcs(lcs: int, len_a: int, len_b: int) -> float:
    if lcs == 0:
        return 0.0
    p, r = lcs / len_a, lcs / len_b
    return 2 * p * r / (p + r)


def rouge_l_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 of two token sequences: LCS / len for precision and recall, 0 when either is empty."""
    if not a or not b:
        return 0.0
    return _f_from_lcs(lcs_length(a, b), len(a), len(b))


def compression_ratio(texts: Sequence[str], *, library_compatible: bool = False) -> float | None:
    """Original UTF-8 size / gzip size of the texts joined with single spaces (see the module docstring).

    ``None`` when the joined text is empty.
    """
    joined = " ".join(texts).encode("utf-8")
    if not joined:
        return None
    once = gzip.compress(joined, compresslevel=9, mtime=0)
    if not library_compatible:
        return len(joined) / len(once)
    # the package's GzipFile: header with FNAME "compressed\0" (10 + 11 bytes), deflate of `once`, 8-byte trailer
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
    body = co.compress(once) + co.flush()
    return len(joined) / (10 + len(b"compressed\0") + len(body) + 8)


def homogenization_rougel(texts: Sequence[str]) -> float | None:
    """Mean ROUGE-L F over all pairs of distinct positions (``rouge_score`` tokens); ``None`` for < 2 texts."""
    n = len(texts)
    if n < 2:
        return None
    toks = [rouge_tokens(t) for t in texts]
    masks = [_positions(t) for t in toks]  # once per text, not once per pair
    values = [
        _f_from_lcs(_lcs(a, b, masks[i], masks[j]), len(a), len(b)) if a and b else 0.0
        for i, a in enumerate(toks)
        for j, b in enumerate(toks)
        if j > i
    ]
    # F is symmetric, so the ordered-pair mean equals the unordered one
    return math.fsum(values) / (n * (n - 1) / 2)


def self_repetition(texts: Sequence[str], *, n: int = 4) -> float | None:
    """Mean over texts of ``log(1 + sum over the text's distinct n-grams of the other texts containing it)``.

    White-space tokens (``str.split()``); ``None`` for an empty group.
    """
    if not texts:
        return None
    docs = []
    for t in texts:
        words = t.split()
        docs.append(set(zip(*(words[i:] for i in range(n)), strict=False)))
    counts = Counter(g for d in docs for g in d)
    return math.fsum(math.log(sum(counts[g] for g in d) - len(d) + 1) for d in docs) / len(docs)


def ngram_diversity(texts: Sequence[str], *, max_n: int = 4) -> float | None:
    """Sum over n = 1..max_n of unique / total n-grams of the space-joined, space-split texts.

    ``None`` when the joined text is empty or there are fewer than ``max_n`` tokens (no ``max_n``-gram exists;
    the package would divide by zero).
    """
    joined = " ".join(texts)
    if not joined:
        return None
    words = joined.split(" ")
    if len(words) < max_n:
        return None
    total = 0.0
    for k in range(1, max_n + 1):
        total += len(set(zip(*(words[i:] for i in range(k)), strict=False))) / (len(words) - k + 1)
    return total
