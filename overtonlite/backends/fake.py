"""A deterministic fake generator for fast tests (no llama.cpp, no model file).

``FakeGenerator`` implements the :class:`~overtonlite.backends.base.Generator` protocol with word-level
"tokens". A sample's text is a pure function of (prompt, seed): the same request always gives the same samples,
and different seeds give different samples. The words come from a small English vocabulary mixed with the
prompt's own words, so lexical and semantic metrics see plausible, varied, prompt-related text.

Semantics mirror the real engine:

* ``max_tokens`` bounds the number of generated words; hitting it gives ``finish_reason="length"``.
* a sample that ends on its own before ``max_tokens`` gives ``finish_reason="eos"``.
* stop strings are matched on the text (also across word boundaries); the earliest match wins, the text is cut
  before it and ``finish_reason="stop"``. ``n_tokens`` counts the words that contribute to the kept text.
* a prompt with more than ``n_ctx`` whitespace-separated words yields ``GroupResult(error="prompt_too_long")``.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from overtonlite.backends.base import PROMPT_TOO_LONG, GenRequest, GroupResult, ProgressFn, SampleResult
from overtonlite.errors import UsageError

DEFAULT_VOCAB: tuple[str, ...] = tuple(
    """
    the a of and to in is it that for on with as this be are by or from at an not can which more one people
    time way think make good also first may would should could use help many some often about most new other
    because each well much even find know important different work example life world often water health
    learn practice simple common idea question answer reason choice value history science music city family
    friend money school book travel food sleep exercise change future problem solution plan goal start small
    consider try remember however perhaps usually clear strong careful honest open quiet bright early late
    """.split()
)

_PUNCT = (".", ",", ".", "\n")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


def _rng(prompt: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x1f{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class FakeGenerator:
    """Deterministic stand-in for :class:`~overtonlite.backends.llamacpp.LlamaCppGenerator`."""

    def __init__(
        self,
        name: str = "fake",
        *,
        chat_template: bool = True,
        n_ctx: int = 2048,
        vocab: Sequence[str] | None = None,
        model_sha256: str = "0" * 64,
        mean_words: int = 40,
    ) -> None:
        self.name = name
        self.model_sha256 = model_sha256
        self.n_ctx = int(n_ctx)
        self.chat_template = chat_template
        self.vocab: tuple[str, ...] = tuple(vocab) if vocab else DEFAULT_VOCAB
        if not self.vocab:
            raise UsageError("the fake generator needs a non-empty vocabulary")
        self.mean_words = max(2, int(mean_words))
        self.stats: dict[str, int] = {"prompt_tokens_evaluated": 0, "generated_tokens": 0, "groups": 0}
        self.closed = False

    # -- protocol ---------------------------------------------------------------------------------------------
    def has_chat_template(self) -> bool:
        """True when constructed with ``chat_template=True``."""
        return self.chat_template

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """ChatML-like rendering ending with the assistant turn's opening; UsageError without a template."""
        if not self.chat_template:
            raise UsageError(f"model '{self.name}' has no chat template; use raw completion")
        parts = []
        for i, msg in enumerate(messages):
            role, content = msg.get("role"), msg.get("content")
            if not isinstance(role, str) or not isinstance(content, str):
                raise UsageError(f"chat message {i} needs string 'role' and 'content'")
            parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
        parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    def count_tokens(self, text: str) -> int:
        """Number of whitespace-separated words."""
        return len(text.split())

    def describe(self) -> dict[str, Any]:
        """Facts for the manifest."""
        return {
            "backend": "fake",
            "name": self.name,
            "n_ctx": self.n_ctx,
            "chat_template": self.chat_template,
            "vocab_size": len(self.vocab),
        }

    def close(self) -> None:
        """Nothing to free; later ``generate`` calls raise UsageError."""
        self.closed = True

    def generate(
        self, requests: Iterable[GenRequest], *, on_tokens: ProgressFn | None = None
    ) -> Iterator[GroupResult]:
        """Yield one GroupResult per request, in input order."""
        if self.closed:
            raise UsageError("the generator is closed")
        for req in requests:
            t0 = time.perf_counter()
            n_prompt = self.count_tokens(req.prompt)
            if n_prompt > self.n_ctx:
                yield GroupResult(key=req.key, samples=[], prompt_tokens=n_prompt, error=PROMPT_TOO_LONG)
                continue
            samples = [self._sample(req, seed) for seed in req.seeds]
            produced = sum(s.n_tokens for s in samples)
            self.stats["prompt_tokens_evaluated"] += n_prompt
            self.stats["generated_tokens"] += produced
            self.stats["groups"] += 1
            if on_tokens is not None and produced:
                on_tokens(produced)
            yield GroupResult(
                key=req.key,
                samples=samples,
                prompt_tokens=n_prompt,
                prompt_tokens_evaluated=n_prompt,
                seconds=time.perf_counter() - t0,
            )

    # -- internals --------------------------------------------------------------------------------------------
    def _pieces(self, prompt: str, seed: int, limit: int) -> tuple[list[str], bool]:
        """Up to ``limit`` word pieces; the bool says whether the sample ended on its own (eos)."""
        rng = _rng(prompt, seed)
        prompt_words = [w.lower() for w in _WORD_RE.findall(prompt)]
        length = rng.randint(max(1, self.mean_words // 3), self.mean_words * 2)
        pieces: list[str] = []
        for i in range(min(length, limit)):
            r = rng.random()
            if prompt_words and r < 0.25:
                word = rng.choice(prompt_words)
            else:
                word = rng.choice(self.vocab)
            if i == 0:
                pieces.append(word.capitalize())
            elif r > 0.93:
                pieces.append(rng.choice(_PUNCT) + " " + word)
            else:
                pieces.append(" " + word)
        return pieces, length < limit

    def _sample(self, req: GenRequest, seed: int) -> SampleResult:
        sp = req.sampling
        pieces, ended = self._pieces(req.prompt, seed, sp.max_tokens)
        text = "".join(pieces)
        finish = "eos" if ended else "length"
        n_tokens = len(pieces)
        cut = min((i for i in (text.find(s) for s in sp.stop) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
            finish = "stop"
            n_tokens, pos = 0, 0
            for p in pieces:
                if pos >= cut:
                    break
                n_tokens += 1
                pos += len(p)
        return SampleResult(
            text=text, n_tokens=n_tokens, finish_reason=finish, seed=seed, max_tokens=sp.max_tokens
        )
