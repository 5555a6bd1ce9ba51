"""Sampling of every sequence of a decode step at once, on llama.cpp's logits buffer.

llama.cpp's sampler chain walks the whole vocabulary several times per token and sequence with scalar code (fill
the candidate array, temperature, max, exp, cumulative sum): for Gemma's 262k tokens that is milliseconds per
sequence, 10-15 % of a batched decode step. Here plain temperature sampling (the paper's setting) is one softmax
pass over all rows of the step at once, run by onnxruntime (see :class:`Workspace`), then a two-level
inverse-CDF draw per sequence (see :func:`sample_step`), with no truncation.

With top_k / top_p / min_p, a token is dropped only when its probability relative to the most likely token is below ``e**-CUT``
(at the sampling temperature, and at temperature 1 when top-p or min-p look at the untempered distribution, as
in llama.cpp's chain). With CUT = 46 all dropped tokens together hold less than ``n_vocab * 1e-20`` of the mass
(< 3e-15 for 262k tokens), far below the float32 resolution of the logits: the distribution sampled is the
chain's ``top_k -> top_p -> min_p -> temp -> dist``. Each sequence draws one uniform number per token from its
own generator (PCG64 seeded with the sample's seed), so a sample depends on its seed and its logits only.

``SAMPLER_VERSION`` names the arithmetic: a change that can alter a drawn token bumps it, and it is part of a
run's schedule settings, so a run is never resumed with other arithmetic than it started with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from overtonlite.config import SamplingConfig
from overtonlite.errors import missing_dependency

CUT = 46.0
# 1: numpy exp((logit - max) / T), unnormalised; 2: onnxruntime softmax(logit * float32(1 / T))
SAMPLER_VERSION = 2


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


def penalize_rows(
    logits: np.ndarray, rows: Sequence[int], seens: Sequence[np.ndarray], penalty: float
) -> None:
    """The repetition penalty, in place, on ``logits[rows[i]]`` for the token ids ``seens[i]`` (distinct rows,
    distinct ids per row): ``logit <= 0 ? logit * penalty : logit / penalty`` in float32, as llama.cpp's penalties
    sampler computes it, but over the tokens seen only instead of a hash lookup for every vocabulary entry. All
    rows go through one gather and one scatter on the flat buffer."""
    flat = logits.reshape(-1)
    width = logits.shape[1]
    if len(rows) == 1:
        idx = seens[0] + rows[0] * width if rows[0] else seens[0]
    else:
        idx = np.concatenate([seen + row * width for row, seen in zip(rows, seens, strict=True)])
    p = np.float32(penalty)
    vals = flat[idx]
    flat[idx] = np.where(vals <= 0, vals * p, vals / p)


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
    ``softmax(logit / T)`` pass over the rows, sums of 1024-token blocks, then per sequence one uniform number
    picks a block from the block sums and a token from that block's cumulative sum (inverse CDF in two levels).
    Greedy takes the argmax; top_k / top_p / min_p work on the candidates near each row's maximum. A
    ``workspace`` (one per generator; by default one shared by callers without one) keeps the buffer and the
    onnxruntime session between steps. The rows sampled that way are left multiplied by ``1 / T`` in ``logits``
    (see :meth:`Workspace.tempered`).
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
        ws = workspace or _shared_workspace()
        inv_t = ws.inverse_temperatures(tuple(configs[first[uniq[k]]].temperature for k in plain))
        probs, sums = ws.tempered(part, inv_t)
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
    """One generator's output buffer and onnxruntime session for :func:`sample_step` (not shared between threads).

    The tempered pass is ``softmax(logits * inv_t)`` per row: numpy scales the rows in place, then onnxruntime's
    CPU ``Softmax`` kernel (a one-node graph, see :func:`_softmax_model`) writes the probabilities into a buffer
    kept between steps: a fresh (rows x vocabulary) array every step costs page faults (Gemma: 32 rows x 262k
    floats = 33 MB). On these 2-core machines the pass is limited by memory traffic; numpy's subtract / multiply /
    exp / sum make four passes over the rows and took about 1.5x the time of onnxruntime's softmax
    (``benchmarks/bench_sampler.py`` measures both). The scaling is not a graph node because onnxruntime's arena
    would then keep its output, as large as the logits, between steps (+43 MB of RSS for Gemma at 32 rows).
    Steps of at least ``PARALLEL_MIN`` logits run on a session of ``threads`` threads, which splits the rows;
    smaller ones on a one-thread session: handing a small step to a second thread costs more than it saves,
    because llama.cpp's OpenMP worker is still spin-waiting on the other core when the step arrives (measured
    with SmolLM2 at 2 sequences: 0.94x the bare decode loop with two threads, 0.98x with one). Each row is
    computed whole by one thread, so the result does not depend on the thread count (tested). onnxruntime's pool
    threads do not spin between steps, so they leave the cores to llama.cpp's.
    """

    def __init__(self, threads: int = 2) -> None:
        self.buf = np.empty(0, dtype=np.float32)
        self.threads = max(1, min(2, threads))
        self.sessions: dict[int, _Bound] = {}  # thread count -> its session and what is bound to it
        self._starts: dict[int, np.ndarray] = {}
        self._inv_t: dict[tuple[float, ...], np.ndarray] = {}

    def out(self, shape: tuple[int, int]) -> np.ndarray:
        size = shape[0] * shape[1]
        if self.buf.size < size:
            self.buf = np.empty(size, dtype=np.float32)
        return self.buf[:size].reshape(shape)

    def inverse_temperatures(self, temps: tuple[float, ...]) -> np.ndarray:
        """``1 / T`` per row as a (rows x 1) float32 array, the same array for the same temperatures."""
        arr = self._inv_t.get(temps)
        if arr is None:
            if len(self._inv_t) >= 64:
                self._inv_t.clear()
            arr = self._inv_t[temps] = np.array([1.0 / t for t in temps], dtype=np.float32)[:, None]
        return arr

    def tempered(self, part: np.ndarray, inv_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(``softmax(logit * inv_t)`` per row in the buffer, its sums over blocks of BLOCK tokens).

        ``part`` (float32, C-contiguous: llama.cpp's logits rows, or the caller's copy of them) is multiplied by
        ``inv_t`` IN PLACE before the softmax: scaling there in numpy, then a Softmax-only graph, keeps
        onnxruntime from holding an intermediate as large as the logits (measured: 10.7 against 15.9 ms for 32 x
        262k, and the same bits, float32 products being exact-rounded either way).
        """
        if part.dtype != np.float32 or not part.flags.c_contiguous or not part.flags.writeable:
            raise ValueError(
                "the tempered pass scales its rows in place: give a writable C-contiguous float32 array"
            )
        threads = self.threads if part.shape[0] > 1 and part.size >= PARALLEL_MIN else 1
        bound = self.sessions.get(threads)
        if bound is None:
            bound = self.sessions[threads] = _Bound(softmax_session(threads))
        np.multiply(part, inv_t, out=part)
        out = self.out(part.shape)
        bound.bind(part, out)
        bound.session.run_with_iobinding(bound.io)
        width = part.shape[1]
        starts = self._starts.get(width)
        if starts is None:
            starts = self._starts[width] = np.arange(0, width, BLOCK)
        return out, np.add.reduceat(out, starts, axis=1)

    def close(self) -> None:
        self.sessions.clear()
        self.buf = np.empty(0, dtype=np.float32)


class _Bound:
    """An onnxruntime session of :func:`_softmax_model` and its IO binding, rebound only when a buffer moved
    (llama.cpp's logits buffer and the workspace's output buffer stay put from step to step)."""

    __slots__ = ("session", "io", "logits_key", "out_key", "held")

    def __init__(self, session: Any) -> None:
        self.session = session
        self.io = session.io_binding()
        self.logits_key: tuple[int, tuple[int, ...]] | None = None
        self.out_key: tuple[int, tuple[int, ...]] | None = None
        self.held: np.ndarray | None = (
            None  # the bound logits, kept alive so no other array takes their address
        )

    def bind(self, logits: np.ndarray, out: np.ndarray) -> None:
        key = (logits.ctypes.data, logits.shape)
        if self.logits_key != key:
            self.io.bind_cpu_input("logits", logits)
            self.logits_key = key
        self.held = logits
        key = (out.ctypes.data, out.shape)
        if self.out_key != key:
            self.io.bind_output("probs", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
            self.out_key = key


_SHARED: list[Workspace] = []


def _shared_workspace() -> Workspace:
    """The workspace of :func:`sample_step` calls without one (tests, diagnostics), made on first use."""
    if not _SHARED:
        _SHARED.append(Workspace(threads=1))
    return _SHARED[0]


# -- the ONNX graph of the tempered pass, written out in protobuf's wire format (no onnx package needed) --------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int | str) -> bytes:
    """One protobuf field: a non-negative integer (varint) or a string / embedded message (length-delimited)."""
    if isinstance(payload, int):
        if payload < 0:
            raise ValueError("only non-negative integers are encoded here")
        return _varint(number << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor_info(name: str, dims: Sequence[int | str]) -> bytes:
    """ValueInfoProto of a float tensor; a str dimension is symbolic."""
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    float_tensor = _field(1, 1) + _field(2, shape)  # elem_type FLOAT, shape
    return _field(1, name) + _field(2, _field(1, float_tensor))


def _softmax_model() -> bytes:
    """ModelProto (IR 8, opset 13): probs = Softmax(axis=1)(logits); logits (rows x vocab)."""
    axis = _field(1, "axis") + _field(3, 1) + _field(20, 2)  # AttributeProto: name, i, type INT
    softmax = _field(1, "logits") + _field(2, "probs") + _field(4, "Softmax") + _field(5, axis)
    graph = (
        _field(1, softmax)
        + _field(2, "tempered")
        + _field(11, _tensor_info("logits", ["rows", "vocab"]))
        + _field(12, _tensor_info("probs", ["rows", "vocab"]))
    )
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 8) + _field(8, opset) + _field(7, graph)


def softmax_session(threads: int) -> Any:
    """An onnxruntime CPU session of :func:`_softmax_model` with ``threads`` intra-op threads that do not spin."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise missing_dependency("onnxruntime") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(_softmax_model(), sess_options=so, providers=["CPUExecutionProvider"])


def distribution(row: np.ndarray, sc: SamplingConfig) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, probabilities) that :func:`sample_step` draws from for one logits row (tests, diagnostics)."""
    top = float(row.max())
    cand = np.flatnonzero(row >= np.float32(top - _gap(sc)))
    cand, logit = _truncate(cand, row[cand].astype(np.float64), sc)
    p = np.exp((logit - logit.max()) / sc.temperature)
    return cand, p / p.sum()
