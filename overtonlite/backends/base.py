"""The backend interfaces.

A *generator* turns prompt groups into N samples each. The unit of work is the group: a rendered prompt plus N
per-sample seeds. ``generate`` yields each group as soon as all of its samples are finished (completion order, not
input order), so callers can persist group by group, stop cleanly at a group boundary and resume.

A group whose prompt does not fit the context is not an exception: it is yielded with ``error`` set to
``"prompt_too_long"`` and no samples, and the run goes on.

An *embedder* maps texts to L2-normalised sentence vectors and, in the same forward pass, to token states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from overtonlite.config import SamplingConfig

FinishReason = Literal["stop", "eos", "length"]
PROMPT_TOO_LONG = "prompt_too_long"


@dataclass(frozen=True)
class GenRequest:
    """One prompt group: ``prompt`` is the fully rendered text (chat template already applied, if any)."""

    key: str
    prompt: str
    seeds: tuple[int, ...]
    sampling: SamplingConfig
    # requests with the same cohort (>= 0) are decoded together, apart from every other cohort, from a cleared
    # state, so a batching engine gives the same texts however a run was interrupted; -1: no such constraint
    cohort: int = -1

    @property
    def n(self) -> int:
        return len(self.seeds)


@dataclass
class SampleResult:
    text: str
    n_tokens: int
    finish_reason: FinishReason
    seed: int
    max_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "n_tokens": self.n_tokens,
            "finish_reason": self.finish_reason,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }


@dataclass
class GroupResult:
    key: str
    samples: list[SampleResult]
    prompt_tokens: int
    error: str | None = None
    # prompt tokens actually evaluated for this group (less than prompt_tokens when a shared prefix was reused)
    prompt_tokens_evaluated: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[int], None]
"""Called with the number of tokens generated since the last call (for tokens/s displays)."""


@runtime_checkable
class Generator(Protocol):
    """What ``overtonlite sample`` and the experiments need from a text generator."""

    name: str
    model_sha256: str
    n_ctx: int

    def has_chat_template(self) -> bool: ...

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """Render chat messages with the model's own template, ending with the assistant turn's opening."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, requests: Iterable[GenRequest], *, on_tokens: ProgressFn | None = None
    ) -> Iterator[GroupResult]: ...

    def describe(self) -> dict[str, Any]:
        """Facts for the manifest: backend, versions, threads, context, system info..."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence vectors, shape (len(texts), dim), float32."""
        ...

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Sentence vectors and, from the same forward pass, per-text token states (no CLS/SEP/padding)."""
        ...

    def describe(self) -> dict[str, Any]: ...
