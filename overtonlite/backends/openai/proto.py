"""Wire-format helpers of the OpenAI-compatible backend: chat prompts carried as JSON behind a reserved prefix,
a token estimate, finish reasons mapped across servers, and how servers word "the prompt is too long"."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from overtonlite.backends.base import FinishReason
from overtonlite.errors import UsageError

# settings some servers reject (old vLLM: top_k=0; TGI: top_p=1.0): dropped, and reported in describe() and
# GroupResult.extra, once a server names them in a 4xx answer; the server's own default then applies
OPTIONAL_FIELDS = (
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "repeat_penalty",
    "repeat_last_n",
    "seed",
)

CHAT_PREFIX = "\x1eovertonlite-chat-v1\x1e"
"""Reserved prefix of a prompt that carries chat messages as JSON instead of rendered text."""

CONTEXT_RE = re.compile(
    r"context|too long|maximum model length|max_model_len|max_total_tokens|max_input_(tokens|length)|"
    r"max_new_tokens|must have less than \d+ tokens|'max_tokens' is too large",
    re.IGNORECASE,
)


def encode_chat(messages: Sequence[dict[str, str]]) -> str:
    """Serialise chat messages into a prompt string that :class:`OpenAIGenerator` sends as ``messages``."""
    clean = []
    for i, msg in enumerate(messages):
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise UsageError(f"chat message {i} needs string 'role' and 'content'")
        clean.append({"role": role, "content": content})
    return CHAT_PREFIX + json.dumps(clean, ensure_ascii=False, separators=(",", ":"))


def decode_chat(prompt: str) -> list[dict[str, str]] | None:
    """The messages of a prompt made by :func:`encode_chat`, or None for a raw-text prompt."""
    if not prompt.startswith(CHAT_PREFIX):
        return None
    return json.loads(prompt[len(CHAT_PREFIX) :])


def estimate_tokens(text: str) -> int:
    """A whitespace-based estimate (about 4 tokens per 3 words) for servers without a tokenize endpoint."""
    words = len(text.split())
    return math.ceil(words * 4 / 3) if words else 0


def map_finish_reason(choice: dict[str, Any], *, stop_requested: bool) -> tuple[FinishReason, bool]:
    """Map a choice's finish reason to stop/eos/length; the bool says whether stop vs eos was a guess."""
    reason = str(choice.get("finish_reason") or "").lower()
    if reason in ("length", "max_tokens", "model_length"):
        return "length", False
    if reason in ("eos", "eos_token"):
        return "eos", False
    if reason == "stop_sequence":
        return "stop", False
    if "stop_reason" in choice:  # vLLM: the matched stop string, a stop token id, or None for EOS
        return ("stop" if isinstance(choice["stop_reason"], str) else "eos"), False
    if not stop_requested:
        return "eos", False
    return "stop", True


@dataclass
class Choice:
    """One parsed choice of a completion answer."""

    text: str
    finish: FinishReason
    n_tokens: int
    tokens_source: str
    ambiguous: bool


@dataclass
class Outcome:
    """The parsed answer to one request (or the error that ended its group)."""

    choices: list[Choice]
    prompt_tokens: int = 0
    evaluated: int = 0
    error: str | None = None
    message: str = ""
    used_n: bool = False
