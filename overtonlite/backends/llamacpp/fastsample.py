"""Sampling of every sequence of a decode step at once, in numpy, on llama.cpp's logits buffer.

llama.cpp's sampler chain walks the whole vocabulary several times per token and sequence with scalar code (fill
the candidate array, temperature, max, exp, cumulative sum): for Gemma's 262k tokens that is milliseconds per
sequence, 10-15 % of a batched decode step. Here plain temperature sampling (the paper's setting) is a few
vectorised passes over all rows of the step at once (see :func:`sample_step`), with no truncation.

With top_k / top_p / min_p, a token is dropped only when its probability relative to the most likely token is below ``e**-CUT``
(at the sampling temperature, and at temperature 1 when top-p or min-p look at the untempered distribution, as
in llama.cpp's chain). With CUT = 46 all dropped tokens together hold less than ``n_vocab * 1e-20`` of the mass
(< 3e-15 for 262k tokens), far below the float32 resolution of the logits: the distribution sampled is the
chain's ``top_k -> top_p -> min_p -> temp -> dist``. Each sequence draws one uniform number per token from its
own generator (PCG64 seeded with the sample's seed), so a sample depends on its seed and its logits only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from overtonlite.config import SamplingConfig

CUT = 46.0


class SeqRng:
    """One sample's random stream (None for greedy decoding)."""

    __slots__ = ("gen",)

    def __init__(self, sampling: SamplingConfig, seed: int) -> None:
        self.gen = (
            np.random.Generator(np.random.PCG64(seed & 0xFFFFFFFFFFFFFFFF))
            if sampling.temperature > 0
            else None
        )


def _gap(sc: SamplingConfig) -> float:
    """Logit distance below a row's maximum beyond which tokens cannot matter (see the module docstring)."""
    if sc.temperature <= 0:
        return 0.0
    scale = max(sc.temperature, 1.0) if (sc.top_p < 1.0 or sc.min_p > 0) else sc.temperature
    return CUT * scale


def _truncate(cand: np.ndarray, logit: np.ndarray, sc: SamplingConfig) -> tuple[np.ndarray, np.ndarray]:
    """top_k -> top_p -> min_p on the candidates (token ids ascending, float64 logits), as llama.cpp does."""
    if 0 < sc.top_k < cand.size:
        keep = np.sort(np.argpartition(-logit, sc.top_k - 1)[: sc.top_k])
        cand, logit = cand[keep], logit[keep]
    if sc.top_p < 1.0 and cand.size > 1:
        q = np.exp(logit - logit.max())
        order = np.argsort(-q, kind="stable")
        cum = np.cumsum(q[order]) / q.sum()
        last = min(int(np.searchsorted(cum, sc.top_p)), cand.size - 1)
        keep = np.sort(order[: last + 1])
        cand, logit = cand[keep], logit[keep]
    if sc.min_p > 0 and cand.size > 1:
        keep = logit >= logit.max() + math.log(sc.min_p)
        cand, logit = cand[keep], logit[keep]
    return cand, logit


BLOCK = 1024  # vocabulary block for the two-level inverse-CDF draw


def _plain(sc: SamplingConfig) -> bool:
    """Temperature sampling over the whole vocabulary (no top_k / top_p / min_p): the vectorised path."""
    return sc.temperature > 0 and sc.top_k <= 0 and sc.top_p >= 1.0 and sc.min_p <= 0


def sample_step(
    logits: np.ndarray,
    rows: Sequence[int],
    configs: Sequence[SamplingConfig],
    rngs: Sequence[SeqRng],
    workspace: Workspace | None = None,
) -> list[int]:
    """One token per sequence: ``rows[i]`` is sequence i's row of ``logits`` (n_outputs x n_vocab, float32,
    penalties already applied); sequences may share a row (siblings of a just-evaluated prompt).

    Plain temperature sampling (the paper's setting) is exact and vectorised over the step's rows: one
    ``exp((logit - max) / T)`` pass over the rows, sums of 1024-token blocks, then per sequence one uniform number
    picks a block from the block sums and a token from that block's cumulative sum (inverse CDF in two levels).
    Greedy takes the argmax; top_k / top_p / min_p work on the candidates near each row's maximum. A
    ``workspace`` (one per generator) keeps the buffer between steps and splits large steps over two threads.
    """
    uniq = sorted(set(rows))
    first = {r: rows.index(r) for r in uniq}
    block = logits[uniq[0] : uniq[-1] + 1]
    sub = block if len(uniq) == block.shape[0] else logits[uniq]
    pos = {r: k for k, r in enumerate(uniq)}
    plain = [k for k, r in enumerate(uniq) if _plain(configs[first[r]])]
    probs = cums = None
    if plain:
        part = sub if len(plain) == len(uniq) else sub[plain]
        inv_t = np.array([1.0 / configs[first[uniq[k]]].temperature for k in plain], dtype=np.float32)[
            :, None
        ]
        probs, sums = (workspace or Workspace(threads=1)).tempered(part, inv_t)
        cums = np.cumsum(sums, axis=1, dtype=np.float64)
    slot_of_plain = {k: j for j, k in enumerate(plain)}
    other: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    out: list[int] = []
    for r, rng, sc in zip(rows, rngs, configs, strict=True):
        k = pos[r]
        j = slot_of_plain.get(k)
        if j is not None and probs is not None and cums is not None and rng.gen is not None:
            cum = cums[j]
            target = rng.gen.random() * cum[-1]
            b = min(int(np.searchsorted(cum, target, side="right")), cum.size - 1)
            lo = b * BLOCK
            inner = np.cumsum(probs[j, lo : lo + BLOCK], dtype=np.float64)
            rest = target - (cum[b - 1] if b else 0.0)
            i = min(int(np.searchsorted(inner, rest, side="right")), inner.size - 1)
            while i > 0 and probs[j, lo + i] == 0:  # rounding at the block's end: the last token with mass
                i -= 1
            out.append(lo + i)
            continue
        if sc.temperature <= 0 or rng.gen is None:
            out.append(int(np.argmax(sub[k])))
            continue
        if r not in other:
            cand, p = distribution(sub[k], sc)
            other[r] = (cand, np.cumsum(p))
        cand, cum = other[r]
        i = int(np.searchsorted(cum, rng.gen.random() * cum[-1], side="right"))
        out.append(int(cand[min(i, cand.size - 1)]))
    return out


PARALLEL_MIN = 1 << 21  # logits (rows x vocabulary) from which the tempered pass is split over two threads


class Workspace:
    """One generator's reusable buffer and helper thread for :func:`sample_step` (not shared between threads).

    A fresh (rows x vocabulary) array every step costs page faults (Gemma: 32 rows x 262k floats = 33 MB), and
    the elementwise passes are a tenth of a batched step on two cores while llama.cpp's threads wait; numpy
    releases the GIL in them, so two threads on disjoint rows halve that. Each row goes through the same
    operations either way, so the result is bit for bit that of one thread.
    """

    def __init__(self, threads: int = 2) -> None:
        self.buf = np.empty(0, dtype=np.float32)
        self.threads = max(1, min(2, threads))
        self.pool: Any = None

    def out(self, shape: tuple[int, int]) -> np.ndarray:
        size = shape[0] * shape[1]
        if self.buf.size < size:
            self.buf = np.empty(size, dtype=np.float32)
        return self.buf[:size].reshape(shape)

    def tempered(self, part: np.ndarray, inv_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(``exp((logit - row max) * inv_t)`` per row in the buffer, its sums over blocks of BLOCK tokens)."""
        out = self.out(part.shape)
        rows = part.shape[0]
        if rows < 2 or part.size < PARALLEL_MIN or self.threads < 2:
            return out, _tempered_rows(part, inv_t, out)
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overtonlite-sample")
        h = rows // 2
        other = self.pool.submit(_tempered_rows, part[h:], inv_t[h:], out[h:])
        first = _tempered_rows(part[:h], inv_t[:h], out[:h])
        return out, np.concatenate([first, other.result()])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        self.buf = np.empty(0, dtype=np.float32)


def _tempered_rows(part: np.ndarray, inv_t: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.subtract(part, part.max(axis=1, keepdims=True), out=out)
    np.multiply(out, inv_t, out=out)
    np.exp(out, out=out)
    return np.add.reduceat(out, np.arange(0, out.shape[1], BLOCK), axis=1)


def distribution(row: np.ndarray, sc: SamplingConfig) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, probabilities) that :func:`sample_step` draws from for one logits row (tests, diagnostics)."""
    top = float(row.max())
    cand = np.flatnonzero(row >= np.float32(top - _gap(sc)))
    cand, logit = _truncate(cand, row[cand].astype(np.float64), sc)
    p = np.exp((logit - logit.max()) / sc.temperature)
    return cand, p / p.sum()
