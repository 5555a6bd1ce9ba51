"""Numbers the paper's released data gives (paper-protocol.md §3), kept in one place.

The test suite and ``benchmarks/reference_check.py`` compare overtonlite's metrics with these when the authors'
reference data is present. They are published facts about the authors' outputs, not the outputs themselves.
"""

from __future__ import annotations

__all__ = ["LEXICAL", "BERTSCORE_TO_CHAT", "JACCARD_TO_CHAT", "NUMBERED_LIST_RATE"]

LEXICAL: dict[str, tuple[float, float, int]] = {
    "llama-2-base": (0.0891, 0.0891, 129),
    "llama-2-icl": (0.1990, 0.2045, 222),
    "llama-2-chat": (0.2792, 0.2868, 473),
    "gpt-3.5-turbo": (0.2940, 0.3043, 304),
    "mistral": (0.1493, 0.1496, 181),
    "mistral-icl": (0.2217, 0.2313, 211),
    "mistral-instruct": (0.2357, 0.2444, 337),
}
"""§3.1, LIMA-OE: within-prompt mean pairwise Jaccard (authors' definition, ``--lowercase``) and mean words."""

BERTSCORE_TO_CHAT: dict[str, float] = {
    "llama-2-chat": 0.8915,
    "gpt-3.5-turbo": 0.8741,
    "llama-2-icl-chat-knn-prompt_similar": 0.8719,
    "llama-2-icl-chat": 0.8686,
    "llama-2-icl": 0.8614,
    "llama-2-base": 0.8273,
}
"""§3.6 (a), LIMA-OE: the authors' BERTScore F1 (roberta-large, layer 17) to llama-2-chat sample 0."""

JACCARD_TO_CHAT: dict[str, float] = {
    "llama-2-chat": 0.266,
    "llama-2-base": 0.067,
    "llama-2-icl": 0.150,
    "llama-2-icl-chat": 0.178,
    "llama-2-icl-chat-knn-prompt_similar": 0.186,
    "llama-2-icl-chat-summary": 0.216,
    "mistral-icl-chat-summary": 0.262,
}
"""§3.6 (b), LIMA-OE: Jaccard to llama-2-chat sample 0 (no-sentence-split variant)."""

NUMBERED_LIST_RATE: dict[str, float] = {
    "llama-2-chat": 0.92,
    "gpt-3.5-turbo": 0.80,
    "mistral-instruct": 0.78,
    "llama-2-icl": 0.56,
    "llama-2-base": 0.07,
}
"""§3.7, LIMA-OE: share of samples with a numbered list of at least two items."""
