"""Frozen configuration objects with a stable hash.

Every sampling setting is explicit: llama-cpp-python's defaults (T 0.8, top-p 0.95, top-k 40, min-p 0.05) are not
the paper's. The defaults here are the paper's protocol (temperature 0.5, repetition penalty 1.1 over the whole
context, no top-p, no top-k, no min-p), except ``max_tokens``, which is 256 for laptop-sized runs (the paper: 700).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from overtonlite.errors import UsageError

PAPER_MAX_TOKENS = 700


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace), truncated to ``length`` hex chars."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def derive_seed(run_seed: int, prompt_id: Any, sample_index: int, salt: str = "") -> int:
    """A per-sample seed from (run seed, prompt id, sample index): deterministic, well mixed, in [0, 2**31)."""
    blob = f"{run_seed}\x1f{prompt_id}\x1f{sample_index}\x1f{salt}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class SamplingConfig:
    """Sampler settings for one call. ``top_p=1.0``, ``top_k=0`` and ``min_p=0.0`` mean "off"."""

    temperature: float = 0.5
    repetition_penalty: float = 1.1
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    max_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise UsageError(f"temperature must be >= 0, got {self.temperature}")
        if self.repetition_penalty <= 0:
            raise UsageError(f"repetition penalty must be > 0, got {self.repetition_penalty}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise UsageError(f"top-k must be >= 0, got {self.top_k}")
        if not 0 <= self.min_p < 1:
            raise UsageError(f"min-p must be in [0, 1), got {self.min_p}")
        if self.max_tokens < 1:
            raise UsageError(f"max tokens must be >= 1, got {self.max_tokens}")
        if any(not s for s in self.stop):
            raise UsageError("stop strings must be non-empty")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown sampling keys: {', '.join(unknown)}")
        data = dict(data)
        if "stop" in data:
            data["stop"] = tuple(data["stop"])
        return cls(**data)

    def replace(self, **changes: Any) -> SamplingConfig:
        return dataclasses.replace(self, **changes)

    def hash(self) -> str:
        return stable_hash(self.to_dict())
