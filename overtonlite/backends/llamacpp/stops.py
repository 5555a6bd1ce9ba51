"""Incremental text assembly for one sample: UTF-8 decoding of token pieces and stop-string matching.

Token pieces are raw bytes; a multi-byte character can be split across tokens. :class:`SampleText` decodes them
incrementally (an incomplete trailing sequence waits for the next piece, invalid bytes become U+FFFD), remembers at
which text offset every token started, and asks a :class:`StopMatcher` whether a stop string has appeared. Stops
are matched on the decoded text, so a stop that spans several tokens is found as soon as its last character
arrives. The text is cut before the earliest match; the stop string itself is never kept.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class StopMatcher:
    """Find the earliest stop string in a growing text, scanning only the new tail each time.

    ``push(chunk)`` appends text and returns the offset (in the whole text) where a stop string starts, or
    ``None``. ``safe_text()`` is the prefix that can no longer become part of a stop string: it holds back the
    longest suffix that is a prefix of some stop string (what a streaming consumer may show).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self.stops), default=0)
        self.text = ""
        self.match: int | None = None

    def push(self, chunk: str) -> int | None:
        """Append ``chunk``; return the start offset of the earliest stop match (sticky once found)."""
        if self.match is not None:
            return self.match
        start = max(0, len(self.text) - self._longest + 1)
        self.text += chunk
        if not self.stops or not chunk:
            return None
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.match = min(hits)
        return self.match

    def held_back(self) -> int:
        """Length of the text suffix that could still grow into a stop string."""
        if self.match is not None:
            return len(self.text) - self.match
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.text)), best, -1):
                if self.text.endswith(stop[:k]):
                    best = k
                    break
        return best

    def safe_text(self) -> str:
        """The text that is final: before a match, or without a possible partial stop at the end."""
        return self.text[: len(self.text) - self.held_back()]


class SampleText:
    """Bytes of token pieces in, final sample text out (UTF-8 safe, stop-aware, counts kept tokens)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._matcher = StopMatcher(stops)
        self._starts: list[int] = []  # text offset at which each token's contribution starts

    def add(self, piece: bytes) -> bool:
        """Add one generated token's bytes; True when a stop string has been completed."""
        self._starts.append(len(self._matcher.text))
        chunk = self._decoder.decode(piece)
        return self._matcher.push(chunk) is not None

    @property
    def stopped(self) -> bool:
        return self._matcher.match is not None

    @property
    def n_generated(self) -> int:
        return len(self._starts)

    def result(self) -> tuple[str, int]:
        """(kept text, kept token count). Bytes of an unfinished character at the very end are dropped."""
        cut = self._matcher.match
        text = self._matcher.text
        if cut is None:
            return text, len(self._starts)
        kept = sum(1 for s in self._starts if s < cut)
        return text[:cut], kept
