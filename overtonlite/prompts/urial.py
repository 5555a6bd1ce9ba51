"""Plain-text prompt rendering for base models: the zero-shot Query/Answer format and the URIAL-style format.

Both are Markdown with fenced blocks, as in the paper (paper-protocol.md §5)::

    # Instructions:

    <instructions paragraph>

    # Query:
    ```
    <example query>
    ```

    # Summary:          (only when the prompt carries hints)
    ```
    <example summary>
    ```

    # Answer:
    ```
    <example answer>
    ```

    ... more examples ...

    # Query:
    ```
    <test query>
    ```

    # Answer:
    ```

The model writes the answer and stops at the closing fence. ``# Query`` is a second stop string for runs that
skip the fence and start inventing a new turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from overtonlite.prompts.examples import INSTRUCTIONS, Example

FENCE = "```"
STOP: tuple[str, ...] = ("```", "# Query")
"""Stop strings for every base-model prompt rendered here (zero-shot and URIAL)."""

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"(?<=[^\s\d])[.!?:][\"')\]]?(?=\s|$)")  # "2." (a list marker) is no sentence end


def sanitize(text: str) -> str:
    """Strip ``text`` and neutralise code fences inside it so that it cannot close its own block early."""
    return text.replace(FENCE, "'''").strip()


def cap_words(text: str, cap: int | None) -> str:
    """Cut ``text`` to at most ``cap`` whitespace-separated words, keeping its line structure.

    When the cut falls mid-sentence and a sentence end lies in the second half of the kept text, the cut moves back
    to that sentence end, so that examples do not teach the model to stop mid-sentence. ``None`` means no cap.
    """
    if cap is None:
        return text
    if cap < 1:
        raise ValueError(f"answer cap must be >= 1 word, got {cap}")
    words = list(_WORD.finditer(text))
    if len(words) <= cap:
        return text
    cut = words[cap - 1].end()
    kept = text[:cut]
    ends = [m.end() for m in _SENTENCE_END.finditer(kept)]
    if ends and ends[-1] >= len(kept) // 2:
        kept = kept[: ends[-1]]
    return kept.rstrip()


def _block(header: str, body: str) -> str:
    return f"# {header}:\n{FENCE}\n{body}\n{FENCE}\n\n"


def render_base(query: str, *, hint: str | None = None) -> str:
    """The zero-shot prompt for a base model: the query block, an optional summary block, then the open answer."""
    out = _block("Query", sanitize(query))
    if hint is not None:
        out += _block("Summary", sanitize(hint))
    return out + f"# Answer:\n{FENCE}\n"


def render_urial(
    query: str,
    examples: Sequence[Example],
    *,
    instructions: str = INSTRUCTIONS,
    hint: str | None = None,
    answer_cap_words: int | None = None,
) -> str:
    """The URIAL-style prompt: instructions, the examples, the test query, an optional hint, an open answer.

    When ``hint`` is given, every example must carry a ``summary`` too (the examples then show the same
    Query / Summary / Answer pattern that the test query follows). Example answers are cut to
    ``answer_cap_words`` words (see :func:`cap_words`).
    """
    if hint is not None:
        missing = [i for i, ex in enumerate(examples) if ex.summary is None]
        if missing:
            raise ValueError(
                f"a hinted prompt needs a summary for every example; missing for examples {missing}"
            )
    parts = [f"# Instructions:\n\n{instructions.strip()}\n\n"]
    for ex in examples:
        parts.append(_block("Query", sanitize(ex.query)))
        if hint is not None:
            parts.append(_block("Summary", sanitize(ex.summary or "")))
        parts.append(_block("Answer", sanitize(cap_words(sanitize(ex.answer), answer_cap_words))))
    parts.append(render_base(query, hint=hint))
    return "".join(parts)
