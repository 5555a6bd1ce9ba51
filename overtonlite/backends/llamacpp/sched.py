"""The step loop behind :meth:`LlamaCppGenerator.generate` (admission, shared prefix, one decode per step).

See :mod:`overtonlite.backends.llamacpp` for the scheduling policy; this module holds its mechanics.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from overtonlite.backends.base import GenRequest, GroupResult, ProgressFn, SampleResult
from overtonlite.backends.llamacpp.fastsample import SeqRng, penalize_rows, sample_step
from overtonlite.backends.llamacpp.stops import SampleText
from overtonlite.errors import OvertonliteError

if TYPE_CHECKING:
    from overtonlite.backends.llamacpp import LlamaCppGenerator


PREFIX_SEQ = 0
# unified layout: pack the cells in flight once they use 1 / PACK_RATIO of the cohort's high-water mark, at least
# PACK_MIN_CELLS fewer, and copying them takes at most PACK_BYTES (see Scheduler._maybe_pack). Measured on one
# 12-prompt, N = 5, 512-token pass against no packing: SmolLM2-135M 1.07x as fast with a ratio of 2 (and 128 MiB),
# 1.19x with 1.25; gemma-3-270m 1.07x with 1.25, 1.00x with 1.1 (copies too often for what they save)
PACK_RATIO = 1.25
PACK_MIN_CELLS = 1024
PACK_BYTES = 384 * 2**20


@dataclass(eq=False)
class Prefix:
    tokens: tuple[int, ...]
    refs: int = 0
    current: bool = True
    clean: bool = (
        False  # evaluated first thing into a cleared cache (cells 0..len-1): a cohort may start on it
    )


@dataclass(eq=False)
class KVState:
    """The KV cache's bookkeeping, kept between ``generate`` calls: the cells handed out of ``budget`` and the
    cached shared prefix. The generator holds one; only the :class:`Scheduler` changes it."""

    budget: int
    cells_used: int = 0
    prefix: Prefix | None = None
    peak: int = (
        0  # the most cells in use since the cache was last cleared or packed (see Scheduler._maybe_pack)
    )

    def reset(self) -> None:
        """The cache was cleared: no prefix, no cells in use."""
        self.prefix = None
        self.cells_used = 0
        self.peak = 0


@dataclass(eq=False)
class Group:
    req: GenRequest
    tokens: list[int]
    samples: list[SampleResult | None]
    jobs_left: int = 0
    evaluated: int = 0
    t0: float = 0.0


@dataclass(eq=False)
class Job:
    group: Group
    indices: list[int]
    max_new: int
    reuse: int = 0  # prompt tokens taken from the prefix cache
    prefix: Prefix | None = None
    fed: int = 0  # suffix tokens already submitted
    seqs: list[int] = field(default_factory=list)
    cells: int = 0  # reserved KV cells for the prompt part
    live: int = 0

    @property
    def suffix(self) -> list[int]:
        return self.group.tokens[self.reuse :]


@dataclass(eq=False)
class Slot:
    job: Job
    index: int
    seq: int
    rng: SeqRng
    text: SampleText
    pos: int
    last: int = -1
    seen: dict[int, None] = field(default_factory=dict)  # distinct tokens of the context, in order
    seen_buf: Any = None  # the ids of ``seen`` as an int64 array (grown in place, see seen_array)
    n_seen: int = 0

    def seen_array(self) -> Any:
        """The distinct context tokens as an int64 array (a view of a buffer that grows with the sample)."""
        import numpy as np

        if self.seen_buf is None:
            self.seen_buf = np.fromiter(self.seen, dtype=np.int64, count=len(self.seen))
            self.n_seen = len(self.seen)
        return self.seen_buf[: self.n_seen]

    def add_seen(self, tok: int) -> None:
        """Record a generated token in ``seen`` (and in its array, if one was made)."""
        if tok in self.seen:
            return
        self.seen[tok] = None
        buf = self.seen_buf
        if buf is not None:
            if self.n_seen == buf.size:
                import numpy as np

                buf = self.seen_buf = np.concatenate([buf, np.empty(max(64, buf.size), dtype=np.int64)])
            buf[self.n_seen] = tok
            self.n_seen += 1


def pack_cells(nm: Any, groups: Sequence[tuple[Sequence[int], int, int]]) -> None:
    """Move the KV cells of the given sequences into the lowest free cells of a unified cache, values bit for bit.

    ``groups``: ``(sequences, prompt, cut)`` per prompt group, ``sequences`` sharing the cells of positions
    ``0 .. prompt - 1``, the first of them also sharing positions ``0 .. cut - 1`` with the prefix sequence 0 (which
    stays where it is). Each group's first sequence is copied out without the prefix part, its siblings only with
    their own answers; all are removed, then put back in order, and the shared parts are shared again. llama.cpp
    puts restored cells into free cells from its insertion point on, and from the start of the cache when the free
    cells before that point are many (twice the cells restored, more than the cells still held), as they are once
    every sequence in flight is out: so the cells come back packed, near the start.
    """
    saved: list[tuple[int, int, int, tuple[Any, int]]] = []  # (sequence, share from, share below, its cells)
    for seqs, prompt, cut in groups:
        first = seqs[0]
        if cut:
            nm.seq_rm(first, 0, cut)
        saved.append((first, PREFIX_SEQ, cut, nm.seq_state(first)))
        for seq in seqs[1:]:
            nm.seq_rm(seq, 0, prompt)
            saved.append((seq, first, prompt, nm.seq_state(seq)))
    for seq, _, _, _ in saved:
        nm.seq_rm(seq)
    for seq, src, below, state in saved:
        nm.set_seq_state(seq, state)
        if below:
            nm.seq_cp(src, seq, 0, below)


def _sample_result(slot: Slot, finish: str) -> SampleResult:
    text, n_tokens = slot.text.result()
    sp = slot.job.group.req.sampling
    return SampleResult(
        text=text,
        n_tokens=n_tokens,
        finish_reason=finish,  # type: ignore[arg-type]
        seed=slot.job.group.req.seeds[slot.index],
        max_tokens=sp.max_tokens,
    )


def _finish_group(group: Group) -> GroupResult:
    return GroupResult(
        key=group.req.key,
        samples=[s for s in group.samples if s is not None],
        prompt_tokens=len(group.tokens),
        prompt_tokens_evaluated=group.evaluated,
        seconds=time.perf_counter() - group.t0,
    )


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Scheduler:
    """One ``generate`` call: reads requests lazily, keeps jobs in flight, yields finished groups."""

    def __init__(
        self, gen: LlamaCppGenerator, requests: Iterator[GenRequest], on_tokens: ProgressFn | None
    ) -> None:
        self.gen = gen
        self.nm = gen.native
        self.requests = requests
        self.exhausted = False
        self.on_tokens = on_tokens
        self.pending: deque[Job] = deque()
        self.ready: deque[GroupResult] = deque()
        self.free_seqs = list(range(1, gen.max_seqs + 1))
        heapq.heapify(self.free_seqs)
        self.prefill: list[Job] = []
        self.slots: list[Slot] = []
        self.active: list[Job] = []
        self.streams = gen.kv_layout == "streams"  # one KV stream per sequence (see _compact)
        self.cohort = -1  # the cohort in flight (-1: none, continuous batching)
        self.fresh = False  # nothing decoded since the cache was cleared

    # -- reading and admission --------------------------------------------------------------------------------
    def _refill(self) -> None:
        while not self.exhausted and len(self.pending) < self.gen.lookahead:
            try:
                req = next(self.requests)
            except StopIteration:
                self.exhausted = True
                return
            group, immediate = self.gen._plan(req)
            if immediate is not None:
                self.ready.append(immediate)
                continue
            assert group is not None
            self.pending.extend(self.gen._jobs(group))

    def _prefix_for(self, job: Job) -> tuple[int, bool]:
        """(tokens to reuse, whether a new prefix must be evaluated first)."""
        toks = job.group.tokens
        limit = len(toks) - 1  # the last prompt token is always evaluated in the job's own sequence
        pref = self.gen.kv.prefix
        if pref is not None:
            cached = min(_lcp(pref.tokens, toks), limit)
            # sliding-window layers drop the cache's oldest cells: only the whole cached prefix is reusable there
            partial_swa = self.nm.n_swa > 0 and cached < len(pref.tokens)
            if cached >= self.gen.min_prefix and not partial_swa:
                return cached, False
        # the prefix common to all waiting prompts that share at least min_prefix tokens with this one
        best = self._shared_prefix(job)
        return (best, True) if best else (0, False)

    def _shared_prefix(self, job: Job) -> int:
        """Length of the prefix common to the waiting prompts of the job's cohort that share >= min_prefix
        tokens with it (0: none worth sharing)."""
        toks = job.group.tokens
        cohort = job.group.req.cohort
        shared = [
            n
            for n in (
                _lcp(o.group.tokens, toks)
                for o in self.pending
                if o is not job and o.group.req.cohort == cohort
            )
            if n >= self.gen.min_prefix
        ]
        best = min(min(shared, default=0), len(toks) - 1)
        return best if best >= self.gen.min_prefix else 0

    def _start_cohort(self, job: Job) -> None:
        """Bring the KV cache to the state a fresh generator would have for this cohort's first job.

        The cache is cleared, except for a cached prefix that was itself evaluated into a cleared cache and is
        exactly the prefix this job would build: its cells, values and the cache's insertion point are then the
        same as after evaluating it afresh, so the cohort decodes the same floats either way.
        """
        gen = self.gen
        self.cohort = job.group.req.cohort
        pref = gen.kv.prefix
        best = self._shared_prefix(job) if job.group.req.cohort >= 0 else 0
        if (
            pref is not None
            and pref.clean
            and pref.refs == 0
            and best
            and pref.tokens == tuple(job.group.tokens[:best])
        ):
            gen.kv.peak = len(pref.tokens)  # as after evaluating it into a cleared cache
            return
        self.nm.clear()
        self.fresh = True
        if pref is not None:
            pref.current = False
        gen.kv.reset()

    def _release_prefix(self, pref: Prefix | None) -> None:
        if pref is not None and pref.refs == 0 and not pref.current:
            self.gen.kv.cells_used -= len(pref.tokens)

    def _set_prefix(self, tokens: tuple[int, ...], group: Group) -> None:
        """Evaluate ``tokens`` into the prefix sequence (replacing the old cache)."""
        old = self.gen.kv.prefix
        self.nm.seq_rm(PREFIX_SEQ)
        if old is not None:
            old.current = False
            self._release_prefix(old)
        self.gen.kv.prefix = None
        t0 = time.perf_counter()
        step = self.nm.n_batch
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            self.nm.decode([(t, start + k, PREFIX_SEQ, False) for k, t in enumerate(chunk)])
            self.gen.stats["decode_calls"] += 1
        self.gen.kv.prefix = Prefix(tokens=tokens, clean=self.fresh)
        self.fresh = False
        self.gen.kv.cells_used += len(tokens)
        self.gen.stats["prefix_tokens_evaluated"] += len(tokens)
        self.gen.stats["prefix_us"] += int((time.perf_counter() - t0) * 1e6)
        self.gen.stats["prompt_tokens_evaluated"] += len(tokens)
        group.evaluated += len(tokens)

    def _try_admit(self, job: Job) -> bool:
        gen = self.gen
        if job.group.req.cohort != self.cohort:
            if self.active:
                return False  # a cohort starts once the one in flight is finished
            if job.group.req.cohort >= 0:
                self._start_cohort(job)
            self.cohort = job.group.req.cohort
        if len(self.free_seqs) < len(job.indices):
            return False
        gen_cells = len(job.indices) * job.max_new
        reuse, build = self._prefix_for(job)
        extra = reuse if build else 0
        if reuse and gen.kv.cells_used + extra + len(job.group.tokens) - reuse + gen_cells > gen.kv.budget:
            reuse, build, extra = 0, False, 0
        prompt_cells = len(job.group.tokens) - reuse
        if gen.kv.cells_used + extra + prompt_cells + gen_cells > gen.kv.budget:
            if not self.active and gen.kv.prefix is not None and gen.kv.prefix.refs == 0:
                self.nm.seq_rm(PREFIX_SEQ)  # idle and still no room: drop the prefix cache
                gen.kv.prefix.current = False
                self._release_prefix(gen.kv.prefix)
                gen.kv.prefix = None
                return self._try_admit(job)
            return False
        group = job.group
        if group.t0 == 0.0:
            group.t0 = time.perf_counter()
        seq0 = heapq.heappop(self.free_seqs)
        if build:
            self._set_prefix(tuple(group.tokens[:reuse]), group)
        if reuse:
            pref = gen.kv.prefix
            assert pref is not None
            pref.refs += 1
            job.prefix = pref
            if self.streams:  # llama.cpp copies a stream whole: copy, then drop what is past the shared part
                self.nm.seq_cp(PREFIX_SEQ, seq0)
                if len(pref.tokens) > reuse:
                    self.nm.seq_rm(seq0, reuse)
            else:
                self.nm.seq_cp(PREFIX_SEQ, seq0, 0, reuse)
        job.reuse = reuse
        job.seqs = [seq0] + [heapq.heappop(self.free_seqs) for _ in job.indices[1:]]
        job.cells = prompt_cells
        gen.kv.cells_used += prompt_cells + gen_cells
        group.evaluated += prompt_cells
        gen.stats["prompt_tokens_evaluated"] += prompt_cells
        self.prefill.append(job)
        self.active.append(job)
        return True

    # -- the step ---------------------------------------------------------------------------------------------
    def _step(self) -> int:
        t0 = time.perf_counter()  # the step's time includes assembling its batch
        nm = self.nm
        entries: list[tuple[int, int, int, bool]] = []
        outputs: list[tuple[Slot, int]] = []
        for slot in self.slots:
            outputs.append((slot, len(entries)))
            entries.append((slot.last, slot.pos, slot.seq, True))
            slot.pos += 1
        n_live = len(entries)  # one entry per generating sequence; prompt tokens follow
        room = nm.n_batch - n_live
        started: list[tuple[Job, int]] = []
        for job in self.prefill:
            if room <= 0:
                break
            suffix = job.suffix
            chunk = suffix[job.fed : job.fed + room]
            for k, tok in enumerate(chunk):
                i = job.fed + k
                entries.append((tok, job.reuse + i, job.seqs[0], i == len(suffix) - 1))
            job.fed += len(chunk)
            room -= len(chunk)
            if job.fed == len(suffix):
                started.append((job, len(entries) - 1))
        self.prefill = [j for j in self.prefill if j.fed < len(j.suffix)]
        pure = len(entries) == n_live  # a generation-only step (no prompt tokens in the batch)
        t_decode = time.perf_counter()
        nm.decode(entries)
        decode_us = int((time.perf_counter() - t_decode) * 1e6)
        self.fresh = False
        self.gen.stats["decode_calls"] += 1
        produced = 0
        for job, idx in started:
            for seq in job.seqs[1:]:
                nm.seq_cp(job.seqs[0], seq, -1, -1)
            for index, seq in zip(job.indices, job.seqs, strict=True):
                rng = SeqRng(job.group.req.sampling, job.group.req.seeds[index])
                slot = Slot(
                    job, index, seq, rng, SampleText(job.group.req.sampling.stop), len(job.group.tokens)
                )
                slot.seen = dict.fromkeys(job.group.tokens)  # the penalty covers the whole context
                job.live += 1
                outputs.append((slot, idx))
        keep: list[Slot] = []
        for (slot, _), tok in zip(outputs, self._sample_all(outputs), strict=True):
            produced += 1
            if self._advance(slot, tok):
                keep.append(slot)
        self.slots = keep
        if self.streams:
            self._compact()
        else:
            self._maybe_pack()
        stats = self.gen.stats
        stats["generated_tokens"] += produced
        step_us = int((time.perf_counter() - t0) * 1e6)
        if pure:
            stats["gen_steps"] += 1
            stats["gen_step_tokens"] += produced
            stats["gen_step_us"] += step_us
            stats["gen_step_decode_us"] += decode_us
            hist = self.gen.steps_by_batch.setdefault(n_live, [0, 0])
            hist[0] += 1
            hist[1] += step_us
        else:
            stats["mixed_steps"] += 1
            stats["mixed_step_tokens"] += produced
            stats["mixed_step_prompt_tokens"] += len(entries) - n_live
            stats["mixed_step_us"] += step_us
        return produced

    def _live_cells(self) -> int:
        """The KV cells the sequences in flight hold now (unified layout): the cached prefix, each job's own
        prompt cells (shared by its samples, past the part it took from a prefix), each sample's own answer so far."""
        kv = self.gen.kv
        cells = len(kv.prefix.tokens) if kv.prefix is not None else 0
        old: set[int] = set()
        for job in self.active:
            cells += len(job.group.tokens) - job.reuse
            if job.prefix is not None and job.prefix is not kv.prefix and id(job.prefix) not in old:
                old.add(id(job.prefix))  # a replaced prefix: its cells stay while its jobs hold them
                cells += len(job.prefix.tokens)
        for slot in self.slots:
            cells += slot.pos - len(slot.job.group.tokens)
        return cells

    def _maybe_pack(self) -> None:
        """Unified layout: move the KV cells of the sequences in flight together once they are spread thin.

        A decode step attends over every cell up to the highest one in use, and the cells a finished sample
        frees are scattered: the samples in flight keep cells up to the cohort's high-water mark, so every step
        pays for cells no sequence holds any more (at a cohort's end, a step of 3 sequences cost about what a full
        step did). When the cells in use fall to ``1 / PACK_RATIO`` of the most used since the last clear or pack
        (and the copy stays within ``PACK_BYTES``), every sequence in flight is copied out
        (``llama_state_seq_get_data``, bit for bit), removed, and put back into the lowest free cells; siblings share their prompt's cells again, and the cached
        prefix stays where it is. Deterministic (counts only), so exact resume holds; the values are the same, but
        attention then runs over fewer cells, which rounds differently: part of the schedule
        (``SCHEDULE_VERSION`` 2).
        """
        gen = self.gen
        if not gen.pack:
            return
        kv = gen.kv
        live = self._live_cells()
        if live > kv.peak:
            kv.peak = live
            return
        if self.prefill or not self.slots:
            return  # a prompt half evaluated, or nothing left in flight
        if (
            kv.peak < PACK_RATIO * live
            or kv.peak - live < PACK_MIN_CELLS
            or live * gen.cell_bytes > PACK_BYTES
        ):
            return
        self._pack()
        kv.peak = live
        gen.stats["packs"] += 1
        gen.stats["packed_cells"] += live

    def _pack(self) -> None:
        kv = self.gen.kv
        by_job: dict[int, list[Slot]] = {}
        for slot in sorted(self.slots, key=lambda slot: slot.seq):
            by_job.setdefault(id(slot.job), []).append(slot)
        groups = []
        for slots in by_job.values():
            job = slots[0].job
            # the part of the prompt taken from the cached prefix is shared with sequence 0 again afterwards
            cut = job.reuse if job.prefix is not None and job.prefix is kv.prefix else 0
            groups.append(([slot.seq for slot in slots], len(job.group.tokens), cut))
        pack_cells(self.nm, groups)

    def _compact(self) -> None:
        """Streams: keep the sampling sequences on consecutive ids, in id order.

        With a stream per sequence, llama.cpp cuts a batch into one micro-batch per run of consecutive sequence
        ids (and each micro-batch costs a pass over the weights), so a hole left by a finished sample is filled
        by moving the highest sampling sequence into it: its stream is copied whole (before the next decode) and
        the old one freed. Sequences still waiting for their prompt are never moved. Deterministic, like the rest
        of the schedule, and the values are copied bit for bit.
        """
        by_seq = {slot.seq: slot for slot in self.slots}
        reserved = {seq for job in self.prefill for seq in job.seqs}
        while self.free_seqs and by_seq:
            top = max(by_seq.keys() | reserved)
            if self.free_seqs[0] > top or top not in by_seq:
                break
            hole = heapq.heappop(self.free_seqs)
            slot = by_seq.pop(top)
            self.nm.seq_cp(top, hole)
            self.nm.seq_rm(top)
            slot.seq = hole
            by_seq[hole] = slot
            heapq.heappush(self.free_seqs, top)
            self.gen.stats["stream_moves"] += 1
        self.slots.sort(key=lambda slot: slot.seq)

    def _sample_all(self, outputs: list[tuple[Slot, int]]) -> list[int]:
        """Penalise each distinct logits row, then sample every sequence of the step at once (fastsample)."""
        if not outputs:  # a step that only fed prompt tokens (a long prompt, nothing generating yet)
            return []
        logits, rows = self.nm.logits_rows([idx for _, idx in outputs])
        by_penalty: dict[float, tuple[list[int], list[Any]]] = {}
        done: set[int] = set()
        for (slot, _), row in zip(outputs, rows, strict=True):
            penalty = slot.job.group.req.sampling.repetition_penalty
            if penalty != 1.0 and row not in done:  # siblings starting together share one row and one context
                done.add(row)
                pr, ps = by_penalty.setdefault(penalty, ([], []))
                pr.append(row)
                ps.append(slot.seen_array())
        for penalty, (pr, ps) in by_penalty.items():
            penalize_rows(logits, pr, ps, penalty)
        return sample_step(
            logits,
            rows,
            [slot.job.group.req.sampling for slot, _ in outputs],
            [slot.rng for slot, _ in outputs],
            self.gen.workspace,
        )

    def _advance(self, slot: Slot, tok: int) -> bool:
        """Take the slot's sampled token; True while the sample goes on."""
        nm = self.nm
        if nm.is_eog(tok) and not self.gen.ignore_eos:
            self._finish(slot, "eos")
            return False
        stopped = slot.text.add(nm.piece(tok))
        if stopped:
            self._finish(slot, "stop")
            return False
        if slot.text.n_generated >= slot.job.max_new:
            self._finish(slot, "length")
            return False
        slot.last = tok
        slot.add_seen(tok)
        return True

    def _finish(self, slot: Slot, reason: str) -> None:
        job, gen = slot.job, self.gen
        job.group.samples[slot.index] = _sample_result(slot, reason)
        self.nm.seq_rm(slot.seq)
        heapq.heappush(self.free_seqs, slot.seq)
        gen.kv.cells_used -= job.max_new
        job.live -= 1
        if job.live == 0:
            gen.kv.cells_used -= job.cells
            self.active.remove(job)
            if job.prefix is not None:
                job.prefix.refs -= 1
                self._release_prefix(job.prefix)
            group = job.group
            group.jobs_left -= 1
            if group.jobs_left == 0:
                gen.stats["groups"] += 1
                self.ready.append(_finish_group(group))

    # -- driver -----------------------------------------------------------------------------------------------
    def run(self) -> Iterator[GroupResult]:
        while True:
            self._refill()
            while self.pending and self._try_admit(self.pending[0]):
                self.pending.popleft()
                self._refill()
            while self.ready:
                yield self.ready.popleft()
            if not self.active:
                if self.pending:
                    raise OvertonliteError(
                        f"internal scheduling error: a prompt group does not fit into the idle KV cache "
                        f"(n_kv={self.gen.n_kv}); try a larger n_kv"
                    )
                if self.exhausted:
                    return
                continue
            produced = self._step()
            if self.on_tokens is not None and produced:
                self.on_tokens(produced)
            while self.ready:
                yield self.ready.popleft()

    def abort(self) -> None:
        """Free everything still in flight (normal end: nothing; early close or error: all samplers and cells)."""
        if not self.active and not self.slots:
            return
        self.slots = []
        self.active = []
        self.prefill = []
        if self.nm.ctx is not None:
            self.nm.clear()
        self.gen.kv.reset()
