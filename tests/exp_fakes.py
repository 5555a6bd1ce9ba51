"""Fakes shared by the experiment tests: a hashing bag-of-words embedder and a fake (base, chat) pair."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from overtonlite.backends.fake import FakeGenerator
from overtonlite.experiments.common import PairInfo, PairModels

_WORD = re.compile(r"[a-z0-9']+")


def _vec(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big")
    return np.random.default_rng(seed).standard_normal(dim)


class HashEmbedder:
    """Deterministic embedder: a text is the normalised sum of per-word random vectors; token states are the word
    vectors themselves. Texts sharing words are similar, which is all the experiments need."""

    name = "hash-embedder"

    def __init__(self, dim: int = 48) -> None:
        self.dim = dim
        self.calls = 0

    def _tokens(self, text: str) -> np.ndarray:
        words = _WORD.findall(text.lower())
        if not words:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([_vec(w, self.dim) for w in words]).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        rows = []
        for t in texts:
            tok = self._tokens(t)
            v = tok.sum(axis=0) if len(tok) else np.ones(self.dim, dtype=np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.embed(texts), [self._tokens(t) for t in texts]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}


def fake_pair(*, base_template: bool = False, chat_template: bool = True, base_ctx: int = 4096) -> PairModels:
    """A fake pair: base without a chat template, chat with one (unless told otherwise)."""
    info = PairInfo(
        name="fake",
        base="fake-base",
        chat="fake-chat",
        same_family=False,
        base_family="fakeA",
        chat_family="fakeB",
    )
    base = FakeGenerator(
        "fake-base", chat_template=base_template, n_ctx=base_ctx, model_sha256="b" * 64, mean_words=20
    )
    chat = FakeGenerator("fake-chat", chat_template=chat_template, model_sha256="c" * 64, mean_words=40)
    return PairModels(info=info, base=base, chat=chat)
