"""Style statistics that need no judge: list formatting, refusals and degenerate samples.

* Numbered list: at least two lines that start (after indentation) with ``1. ``, ``2. ``, ... in order, as in the
  authors' list counter (threshold 2). A new ``1. `` restarts the count.
* Bulleted list: at least two lines that start (after indentation) with ``- ``, ``* `` or ``• ``.
* Refusal: one of :data:`REFUSAL_PHRASES` (refusals and abstentions, our own list) occurs, case-insensitively and
  with curly apostrophes folded to straight ones.
* Degenerate: empty or white space, fewer than 3 words, or heavily repetitive (see :func:`is_degenerate`).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "REFUSAL_PHRASES",
    "has_numbered_list",
    "has_bullet_list",
    "is_refusal",
    "is_degenerate",
    "style_stats",
]

REFUSAL_PHRASES: tuple[str, ...] = (
    "as an ai",
    "as a language model",
    "i'm just an ai",
    "i am just an ai",
    "i'm an ai",
    "i am an ai",
    "i cannot provide",
    "i can't provide",
    "i cannot answer",
    "i can't answer",
    "i cannot fulfill",
    "i can't fulfill",
    "i cannot assist",
    "i can't assist",
    "i cannot help with",
    "i can't help with",
    "i cannot comply",
    "i must decline",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "i won't be able to",
    "i don't have personal",
    "i do not have personal",
    "i don't have the ability to",
    "i'm sorry, but i",
    "i apologize, but i",
    "it is not appropriate for me",
    "it's not appropriate for me",
    "it would not be appropriate for me",
)
"""Lower-case phrases that mark a refusal or an abstention."""

_NUMBERED = re.compile(r"^\s*(\d{1,3})\. ")
_BULLET = re.compile(r"^\s*[-*•] ")
_WORD = re.compile(r"\w+", re.UNICODE)


def _check(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    return text


def has_numbered_list(text: str) -> bool:
    """True when at least two lines start with ``1. ``, ``2. ``, ... in order (other lines may come between)."""
    expected, best = 1, 0
    for line in _check(text).splitlines():
        m = _NUMBERED.match(line)
        if not m:
            continue
        k = int(m.group(1))
        if k == 1:
            expected = 2
            best = max(best, 1)
        elif k == expected:
            best = max(best, k)
            expected += 1
        if best >= 2:
            return True
    return False


def has_bullet_list(text: str) -> bool:
    """True when at least two lines start (after indentation) with ``- ``, ``* `` or ``• ``."""
    return sum(1 for line in _check(text).splitlines() if _BULLET.match(line)) >= 2


def is_refusal(text: str) -> bool:
    """True when the text contains one of :data:`REFUSAL_PHRASES` (case-insensitive)."""
    low = _check(text).lower().replace("’", "'")
    return any(p in low for p in REFUSAL_PHRASES)


def is_degenerate(text: str) -> bool:
    """True for an empty, near-empty or heavily repetitive sample.

    A sample is degenerate when it is empty or white space, has fewer than 3 white-space words, or more than half
    of it is repetition: either one non-empty line that occurs at least twice accounts for more than 50% of the
    words, or more than 50% of the word positions are covered by word 4-grams (lower-cased ``\\w+`` words) that
    occur at least 3 times.
    """
    return _degenerate(_check(text))


@functools.lru_cache(maxsize=256)
def _degenerate(text: str) -> bool:
    """:func:`is_degenerate` of a checked text; cached, as scoring asks twice per sample (the style rates and
    the quality filter)."""
    words = text.split()
    if len(words) < 3:
        return True
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines:
        line, count = Counter(lines).most_common(1)[0]
        if count >= 2 and count * len(line.split()) > 0.5 * len(words):
            return True
    toks = [w.lower() for w in _WORD.findall(text)]
    if len(toks) >= 8:
        grams = list(zip(toks, toks[1:], toks[2:], toks[3:], strict=False))
        counts = Counter(grams)
        covered = bytearray(len(toks))
        for i, g in enumerate(grams):
            if counts[g] >= 3:
                covered[i : i + 4] = b"\x01\x01\x01\x01"
        if sum(covered) > 0.5 * len(toks):
            return True
    return False


def style_stats(texts: Sequence[str]) -> dict[str, float | None]:
    """Shares of ``texts`` with each style property.

    Keys: ``list_rate`` (numbered or bulleted list), ``numbered_rate``, ``bullet_rate``, ``refusal_rate``,
    ``degenerate_rate``. With no texts every rate is ``None``.
    """
    if isinstance(texts, str):
        raise TypeError("expected a sequence of texts, got a single str")
    texts = [_check(t) for t in texts]
    n = len(texts)
    if n == 0:
        return {
            "list_rate": None,
            "numbered_rate": None,
            "bullet_rate": None,
            "refusal_rate": None,
            "degenerate_rate": None,
        }
    numbered = [has_numbered_list(t) for t in texts]
    bullet = [has_bullet_list(t) for t in texts]
    return {
        "list_rate": sum(a or b for a, b in zip(numbered, bullet, strict=True)) / n,
        "numbered_rate": sum(numbered) / n,
        "bullet_rate": sum(bullet) / n,
        "refusal_rate": sum(map(is_refusal, texts)) / n,
        "degenerate_rate": sum(map(is_degenerate, texts)) / n,
    }
