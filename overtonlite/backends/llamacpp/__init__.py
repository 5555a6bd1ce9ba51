"""Batched N-sample generation on llama.cpp's low-level API.

How a run is scheduled
----------------------
* One context with ``max_seqs + 1`` sequences, in one of two KV layouts (see "KV layout"). Sequence 0 holds the
  shared-prefix cache; sequences ``1..max_seqs`` hold samples.
* A prompt group (one rendered prompt, N seeds) becomes one *job* (or several, when N exceeds ``max_seqs`` or the
  KV budget). A job's prompt is evaluated ONCE into its first sequence; its KV cells are then shared with the
  N-1 sibling sequences (``llama_memory_seq_cp``), and every sibling samples its first token from the same logits.
* Every step decodes the last token of every live sequence of every job in flight, plus prompt chunks of newly
  admitted jobs, in ONE ``llama_decode``. Jobs are admitted in input order while there are free sequences and
  free KV cells (a job reserves ``prompt cells + N * max_new_tokens``); a finished sample's cells are released
  at once with ``llama_memory_seq_rm``. Groups are yielded as soon as all their samples are finished.
* All sequences of a step are sampled at once on llama.cpp's logits buffer (:mod:`.fastsample`): llama.cpp's
  scalar sampler chain cost 10-15 % of a batched step with large vocabularies (Gemma: 262k). The tempered pass
  scales the step's rows by 1/T in place, then runs one onnxruntime softmax over them into a reused buffer, on
  the generator's threads (llama.cpp's are idle then); the draws are numpy.
* Cohorts: requests carrying a cohort index (``GenRequest.cohort >= 0``; ``overtonlite sample`` sets it) are
  decoded cohort by cohort: the next cohort is admitted only once the previous one is finished, and starts from a
  cleared KV cache (see "Exact resume").
* Shared prefix: when a prompt shares at least ``min_prefix`` tokens with the cached prefix, or with another
  prompt waiting in the look-ahead window, the common token prefix is evaluated once into sequence 0 and copied
  into each job before only the job's own suffix is evaluated. The cache lives as long as the generator, so a
  URIAL preamble is evaluated once per run. ``GroupResult.prompt_tokens_evaluated`` and
  ``stats["prompt_tokens_evaluated"]`` count the tokens actually evaluated.

KV layout
---------
``unified``: one KV cache of ``n_kv`` cells shared by all sequences. Siblings share their prompt's cells and a
group reserves only the cells it may use (``prompt + N * max_new``), so it is small; but every step's attention
walks the cells of *all* sequences (llama.cpp masks the others' cells row by row, and a sequence's own cells lie
interleaved with everyone else's), so a step slows down as the answers in flight grow. Measured through this engine
at 32 sequences between 18 and 338 cells per sequence: SmolLM2-135M 192 -> 48 tok/s, gemma-3-270m 124 -> 56.
The cells a finished sample frees are scattered among the others', and a step attends up to the highest cell in
use, so the samples in flight kept paying for the cohort's high-water mark; schedule 2 packs the cells in flight
into the lowest free cells once they have shrunk to four fifths of it (see ``Scheduler._maybe_pack``).

``streams``: every sequence has a KV stream of its own of :func:`stream_cells` (``n_ctx`` rounded up to 256)
cells, so attention reads only the sequence's own, contiguous cells (same measurement, SmolLM2: 157 -> 116 tok/s
at 16 sequences, 103 -> 105 at 32; gemma: 100 -> 89 at 16; see the README). The price is memory: each stream
holds a whole context and siblings hold their own copy of the prompt, so the default ``max_seqs`` comes from
:func:`stream_budget` (streams within :data:`STREAMS_KV_CAP`: 16 sequences on SmolLM2-135M, 32 on gemma-3-270m
at ``n_ctx`` 2048). Two mechanics differ: llama.cpp copies between streams only whole (a cached prefix is copied,
then cut back to the shared part; siblings get a copy of the evaluated prompt), and it cuts a batch into one
micro-batch per run of consecutive sequence ids, so the scheduler keeps the sampling sequences on consecutive ids
by moving the highest one into the stream a finished sample frees (``stats["stream_moves"]``).

The default is unified, for memory. On the full ``replicate`` preset (512-token answers) the streams layout with
budgets that keep memory near the unified cache's (SmolLM2 8 sequences, gemma-3-270m 16) took as long as the
unified cache: it removes the slowdown with depth, but the smaller batch gives the gain back (SmolLM2's chat
pass ran 5 sequences at a time instead of 30). With 16 streams, SmolLM2's chat pass of that preset decoded 1.54x
as fast as the unified cache at 32 sequences, for 0.4 GB more memory (see the README), which is the budget
:data:`STREAMS_KV_CAP` now gives. The layout is part of :meth:`LlamaCppGenerator.schedule_settings` when it is
streams (it changes the floats, so the texts; unified runs keep the keys they had).

Sampling
--------
Each sequence has its own sampler state and seed. The order is the one of Hugging Face/TGI's processors:

1. repetition penalty ``repetition_penalty`` over the WHOLE context (prompt and generated tokens so far):
   ``logit <= 0 ? logit * penalty : logit / penalty`` for every distinct token seen (no frequency or presence
   penalty). The engine applies it to the logits row itself, with the same float32 arithmetic as llama.cpp's
   ``penalties`` sampler, because that sampler does a hash lookup for every vocabulary entry (Gemma: 262k) on
   every token;
2. then the distribution of llama.cpp's chain ``top_k`` (if > 0) -> ``top_p`` (if < 1) -> ``min_p`` (if > 0) ->
   ``temp`` -> ``dist``, drawn by :mod:`.fastsample` (tested against llama.cpp's own samplers): each sample has its
   own random stream (PCG64 seeded with the sample's seed) and draws one uniform number per token.

``temperature == 0`` is greedy decoding (the penalty still applies first).

Text, stops and limits
----------------------
Token pieces are decoded as UTF-8 incrementally (characters split across tokens are joined; invalid bytes become
U+FFFD). Stop strings are matched on the decoded text, also across tokens, and are not kept.
``finish_reason`` is ``"eos"`` (an end-of-generation token, not kept), ``"stop"`` or ``"length"`` (``max_tokens``
reached, or the per-sequence context ``n_ctx`` is full). ``n_tokens`` counts the generated tokens kept.
A prompt of more than ``n_ctx - 1`` tokens yields ``GroupResult(error="prompt_too_long", samples=[])``.

Tokenization: prompts are tokenized with ``parse_special=True`` (rendered chat templates contain control tokens)
and with BOS when the model asks for it; a BOS already at the start of the text is not doubled.

Threads: ``n_threads`` (generation) and ``n_threads_batch`` (prompts) default to the number of physical cores.
On a machine whose cores are busy with other processes, llama.cpp's OpenMP build can slow down by two orders of
magnitude with more than one thread (its barriers spin while a partner thread is descheduled); measured on a
loaded 2-core machine: 0.3-1 tok/s with 2 threads, ~40 tok/s with 1 thread, ~34 tok/s with 2 threads and
``OMP_WAIT_POLICY=PASSIVE``. PASSIVE costs most of the speed on an idle machine (SmolLM2-135M at one sequence:
~50 against ~180 tok/s), so overtonlite sets it only when other work keeps the CPUs busy at the moment
``llama_cpp`` is first imported (watched over 0.25 s, see ``native.import_llama``), and only if the environment
chooses no policy (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``).

A prompt that tokenizes to nothing (and a model without BOS) yields ``error="empty_prompt"``.

Exact resume
------------
llama.cpp's quantized kernels round differently for different batch shapes and KV-cache layouts, so a group's
texts depend on which other sequences share its batches (measured with SmolLM2-135M Q4_1: a group run alone and
beside 11 others differed). The schedule is deterministic, so the texts are fixed once the batches are: the run
plan is cut into cohorts of ``cohort_groups(n)`` consecutive groups (``COHORT_FILL`` times the groups that fit
``max_seqs`` sequences at once), each cohort starts from a cleared KV cache and no cohort overlaps another. A
resumed run (``overtonlite sample``) regenerates every cohort that misses a group, whole, and writes only the
missing groups, so its texts are those of an uninterrupted run. A cached prefix survives into the next cohort only
when it was itself evaluated into a cleared cache and is exactly the prefix that cohort would build: cells,
values and the cache's insertion point are then the same as after evaluating it afresh.

What else decides the texts is returned by :meth:`LlamaCppGenerator.schedule_settings` (the schedule version,
``max_seqs``, the cohort fill, ``n_kv``, ``n_batch``, ``min_prefix``, ``lookahead``); it goes into the cache key
and the run directory's settings check. ``sample``, ``replicate``, ``sweep`` and ``check`` open the engine with
the schedule version the run directory recorded (``schedule=``, any of :data:`SCHEDULES`), so a run started by an
older version resumes with its texts. Thread count does not change texts (measured: 1 and 2 threads identical on 12 groups
of SmolLM2-135M Q4_1 and 4 of gemma-3-270m Q4_K_M; llama.cpp computes each output element in one thread). The llama.cpp build and the CPU's
instruction set do: a run resumed on another machine or llama-cpp-python version is not guaranteed identical
(both are recorded in the manifest).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from overtonlite.backends.base import PROMPT_TOO_LONG, GenRequest, GroupResult, ProgressFn
from overtonlite.backends.llamacpp.chat import render_template
from overtonlite.backends.llamacpp.fastsample import SAMPLER_VERSION, Workspace
from overtonlite.backends.llamacpp.native import NativeModel, load_policy, physical_cores
from overtonlite.backends.llamacpp.sched import Group, Job, KVState, Scheduler
from overtonlite.errors import ModelLoadError, UsageError

# A cohort holds this many times the groups that fit in max_seqs sequences at once. Every cohort ends in a tail
# where its last long samples decode at a small batch. Replaying the full preset's per-sample lengths through the
# admission rule (benchmarks/cohort_tails.py) priced its decode at 1.15x the full-batch time with 2, 1.10x with 4
# and 1.09x with 8 or one cohort per pass; 4 keeps most of the gain, and a resume regenerates at most 4 batches'
# worth of groups.
COHORT_FILL = 4
# Sequence budgets tried, largest first. llama.cpp's batched decode on 2 cores kept gaining up to 32 sequences
# (benchmarks/bench_decode.py, gemma-3-270m: 43 / 63 tok/s at 2 / 4 in one run, 91 / 107 / 131 at 8 / 16 / 32 in the
# next; SmolLM2-135M flat from 8 on), and the steps are cheap to keep: the budget is the largest one whose KV cache fits KV_SHARE
# of the machine's memory (a resumed run must get the same budget, so not the momentarily free memory).
SEQ_BUDGETS = (32, 16, 8, 4, 2, 1)
KV_SHARE = 0.125
MAX_KV_CELLS = 16384
DEFAULT_CELLS_PER_SEQ = 512  # KV cells per sequence when the caller gives no max_tokens
# bump when a scheduling change alters which tokens are decoded together, or over which KV cells; 2 packs the cells
# in flight when they are spread thin (unified layout, see Scheduler._maybe_pack). A run sampled with an older
# schedule this version still runs (SCHEDULES) resumes with it: sample, replicate and check read it from the manifest.
SCHEDULE_VERSION = 2
SCHEDULES = (1, 2)
# streams layout: the bytes of KV streams one model may take by default (stream_budget), and the scheduler's cell
# budget (none: every stream holds a whole context)
STREAMS_KV_CAP = 2**30
STREAMS_BUDGET = 2**40
# every n-th layer attends globally, the others over a sliding window (llama.cpp's defaults for these architectures)
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6}
SAMPLER_CHAIN = "repetition penalty (whole context) -> top_k -> top_p -> min_p -> temp -> dist(seed, PCG64)"


def cells_per_sequence(max_tokens: int | None) -> int:
    """KV cells to plan per sequence: ``max_tokens`` plus room for a prompt suffix, between 128 and 512; 512 when
    no ``max_tokens`` is given. Independent of ``n_ctx`` on purpose: the cache size is part of a run's settings,
    and a retry with a larger ``--ctx`` must keep it. A long shared prefix is stored once (sequence 0) and a
    sequence that needs more cells still gets them while the whole cache has room."""
    if max_tokens is None or max_tokens <= 0:
        return DEFAULT_CELLS_PER_SEQ
    return min(max(int(max_tokens) + 64, 128), DEFAULT_CELLS_PER_SEQ)


def _metadata(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    from overtonlite.gguf_info import read_gguf_metadata

    return read_gguf_metadata(source)


def kv_bytes_per_cell(source: str | Path | Mapping[str, Any]) -> int:
    """Bytes of f16 K and V one KV cell takes over all layers, from a GGUF's metadata (the file's path, or the
    metadata already read); 0 when unknown."""
    try:
        meta = _metadata(source)
        arch = str(meta.get("general.architecture", ""))
        layers = int(meta[f"{arch}.block_count"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv_heads = meta.get(f"{arch}.attention.head_count_kv", heads)
        kv_heads = max(kv_heads) if isinstance(kv_heads, list) else int(kv_heads)
        head_dim = int(meta[f"{arch}.embedding_length"]) // max(1, heads)
        k_len = int(meta.get(f"{arch}.attention.key_length", head_dim))
        v_len = int(meta.get(f"{arch}.attention.value_length", head_dim))
    except Exception:  # noqa: BLE001 - a sizing hint; an unreadable file is reported by the loader
        return 0
    return layers * kv_heads * (k_len + v_len) * 2


def machine_memory() -> int | None:
    """Bytes of physical memory (``MemTotal``, else ``sysconf``; None where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def stream_bytes(source: str | Path | Mapping[str, Any], cells: int, n_batch: int) -> int:
    """Bytes of f16 K and V one KV stream of ``cells`` cells takes (0 when unknown). Layers with a sliding window
    keep only ``window + n_batch`` cells (rounded up to 256) of a stream, as llama.cpp sizes them; which layers
    those are comes from the GGUF's pattern, else :data:`SWA_PATTERNS` (else none: an overestimate)."""
    cell = kv_bytes_per_cell(source)
    if not cell:
        return 0
    meta = _metadata(source)
    arch = str(meta.get("general.architecture", ""))
    window = meta.get(f"{arch}.attention.sliding_window")
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern", SWA_PATTERNS.get(arch, 0))
    if not isinstance(window, int) or window <= 0 or not isinstance(pattern, int) or pattern < 2:
        return cell * cells
    layers = int(meta[f"{arch}.block_count"])
    local = sum(1 for il in range(layers) if il % pattern < pattern - 1)  # every pattern-th layer is global
    local_cells = min(cells, stream_cells(window + n_batch))
    return cell * ((layers - local) * cells + local * local_cells) // layers


def stream_cells(n_ctx: int) -> int:
    """KV cells of one stream: the per-sequence context rounded up to llama.cpp's stream granularity (256)."""
    return -(-int(n_ctx) // 256) * 256


def stream_budget(bytes_per_stream: int, memory: int | None = None) -> int:
    """The default ``max_seqs`` with a stream per sequence: the largest of :data:`SEQ_BUDGETS` whose streams (one
    more for the prefix cache; :func:`stream_bytes` each) fit :data:`STREAMS_KV_CAP` bytes and :data:`KV_SHARE` of
    the machine's memory; 8 when the memory or the stream's size is unknown."""
    avail = machine_memory() if memory is None else memory
    if not bytes_per_stream or not avail:
        return 8
    cap = min(STREAMS_KV_CAP, KV_SHARE * avail)
    for seqs in SEQ_BUDGETS:
        if (seqs + 1) * bytes_per_stream <= cap:
            return seqs
    return 1


def sequence_budget(cell_bytes: int, cells_per_seq: int, memory: int | None = None) -> int:
    """The default ``max_seqs``: the largest of :data:`SEQ_BUDGETS` whose KV cache (``cells_per_seq`` cells per
    sequence, at most :data:`MAX_KV_CELLS` in all) takes at most :data:`KV_SHARE` of the machine's memory; 16 when
    the memory or the model's cell size is unknown. The machine's memory, not the momentarily free memory, so that
    a resumed run on the same machine gets the same budget (the budget decides which tokens are decoded together,
    so it is part of a run's settings; ``sample`` also reuses the value recorded in its run directory)."""
    avail = machine_memory() if memory is None else memory
    if not cell_bytes or not avail:
        return 16
    for seqs in SEQ_BUDGETS:
        if min(MAX_KV_CELLS, seqs * cells_per_seq) * cell_bytes <= KV_SHARE * avail:
            return seqs
    return 1


class LlamaCppGenerator:
    """N samples per prompt, several prompt groups in flight, on one llama.cpp context (see module docstring).

    ``n_ctx`` is the per-sequence context (prompt + generated tokens); ``kv_layout`` ``"unified"`` (default) or
    ``"streams"`` (see "KV layout" in the module docstring); ``max_seqs`` the number of sequences decoded
    together (default: :func:`sequence_budget`, or :func:`stream_budget` with streams);
    ``n_kv`` the total KV cells shared by all sequences of the unified layout (default
    ``max(n_ctx, min(16384, cells_per_sequence(max_tokens) * max_seqs))``; with streams every sequence gets
    :func:`stream_cells` and ``n_kv`` is ignored); ``max_tokens`` is the longest sample the caller will ask for, a
    sizing hint only); ``n_threads`` defaults to the number of physical cores (used for decoding and prompt
    evaluation).
    ``min_prefix`` is the shortest token prefix worth sharing, ``lookahead`` how many requests are read ahead to
    find shared prefixes. ``verbose`` keeps llama.cpp's own logging; ``ignore_eos`` (benchmarks only) samples
    past end-of-generation tokens. Raises ModelLoadError for a missing, truncated or corrupt model file.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        model_sha256: str = "",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        max_seqs: int | None = None,
        n_batch: int = 512,
        n_kv: int | None = None,
        max_tokens: int | None = None,
        min_prefix: int = 32,
        lookahead: int = 64,
        verbose: bool = False,
        ignore_eos: bool = False,
        kv_layout: str | None = None,
        schedule: int | None = None,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        try:
            from overtonlite.gguf_info import validate_gguf
        except ImportError:
            validate_gguf = None
        header = validate_gguf(path) if validate_gguf is not None else None
        if n_ctx < 2 or (max_seqs is not None and max_seqs < 1) or n_batch < 1:
            raise UsageError("n_ctx must be >= 2, max_seqs >= 1 and n_batch >= 1")
        self.ignore_eos = ignore_eos  # benchmarks only: sample past end-of-generation tokens
        self.name = name or path.stem
        self.model_sha256 = model_sha256
        self.model_path = path
        self.n_ctx = int(n_ctx)
        if kv_layout not in (None, "unified", "streams"):
            raise UsageError(f"kv_layout must be 'unified' or 'streams', not {kv_layout!r}")
        self.kv_layout = kv_layout or "unified"
        streams = self.kv_layout == "streams"
        if schedule not in (None, *SCHEDULES):
            raise UsageError(
                f"schedule must be one of {', '.join(map(str, SCHEDULES))} (this version's), not {schedule!r}"
            )
        self.schedule = int(schedule or SCHEDULE_VERSION)
        self.pack = self.schedule >= 2  # unified layout: pack the cells in flight when spread thin (sched)
        meta = header.metadata if header is not None else path
        cell_bytes = kv_bytes_per_cell(meta)  # one KV cell over all layers; 0: unknown
        self.cell_bytes = cell_bytes or 2**16  # what packing copies per cell (unknown: a large model's)
        per_seq = stream_cells(self.n_ctx) if streams else cells_per_sequence(max_tokens)
        if max_seqs:
            self.max_seqs = int(max_seqs)
        else:  # the header was just read by the validation: its metadata gives the KV cell size
            if streams:
                self.max_seqs = stream_budget(stream_bytes(meta, per_seq, int(n_batch)))
            else:
                self.max_seqs = sequence_budget(cell_bytes, per_seq)
        self.n_threads = int(n_threads) if n_threads else physical_cores()
        self.min_prefix = max(1, int(min_prefix))
        self.lookahead = max(2, int(lookahead))
        if streams:  # one stream per sequence (and one for the prefix cache), each holding a whole context
            n_kv = per_seq * (self.max_seqs + 1)
        else:
            n_kv = int(n_kv) if n_kv else max(self.n_ctx, min(MAX_KV_CELLS, per_seq * self.max_seqs))
            n_kv = max(n_kv, self.n_ctx + 16)
        self.native = NativeModel(
            path,
            n_kv=n_kv,
            n_seq_max=self.max_seqs + 1,
            n_batch=max(int(n_batch), self.max_seqs),
            n_threads=self.n_threads,
            verbose=verbose,
            unified=not streams,
        )
        self.n_kv = self.native.n_kv
        # KV cells the scheduler hands out, and the cached prefix; a stream always has room for a whole context
        # (the prompt check in _plan), so the shared budget never binds there
        self.kv = KVState(budget=STREAMS_BUDGET if streams else self.n_kv - 16)
        self.workspace = Workspace(threads=self.n_threads)  # the sampler's buffer and onnxruntime session
        self._template = self.native.meta("tokenizer.chat_template")
        self._busy = False
        self.stats: dict[str, int] = {
            "prompt_tokens_evaluated": 0,
            "prefix_tokens_evaluated": 0,
            "generated_tokens": 0,
            "decode_calls": 0,
            "groups": 0,
            "gen_steps": 0,  # generation-only steps (no prompt tokens in the batch) ...
            "gen_step_tokens": 0,  # ... the tokens sampled in them ...
            "gen_step_us": 0,  # ... the time they took (decode + sampling + bookkeeping), for tokens/s ...
            "gen_step_decode_us": 0,  # ... and the part of it spent in llama_decode
            "mixed_steps": 0,  # steps that also evaluated prompt tokens: their count, tokens sampled, ...
            "mixed_step_tokens": 0,
            "mixed_step_prompt_tokens": 0,  # ... prompt tokens evaluated, ...
            "mixed_step_us": 0,  # ... and time
            "prefix_us": 0,  # evaluating shared prefixes (prefix_tokens_evaluated), outside the steps
            "stream_moves": 0,  # streams layout: samples moved into a lower stream to close a gap
            "packs": 0,  # unified layout: times the cells in flight were packed, and the cells moved
            "packed_cells": 0,
        }
        # generation-only steps by batch size: sequences in the step -> [steps, microseconds]
        self.steps_by_batch: dict[int, list[int]] = {}

    # -- simple protocol methods -------------------------------------------------------------------------------
    def has_chat_template(self) -> bool:
        """True when the GGUF carries ``tokenizer.chat_template``."""
        return bool(self._template)

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """Render messages with the model's own Jinja template, ending with the assistant turn's opening."""
        if not self._template:
            raise UsageError(
                f"model '{self.name}' has no chat template in its GGUF metadata; use raw completion"
            )
        nm = self.native
        return render_template(
            self._template, messages, bos_token=nm.token_text(nm.bos), eos_token=nm.token_text(nm.eos)
        )

    def tokenize(self, text: str) -> list[int]:
        """Prompt tokens as generation sees them (BOS as the model wants, special tokens parsed)."""
        toks = self.native.tokenize(text, add_special=True, parse_special=True)
        if not toks and self.native.bos >= 0:
            toks = [self.native.bos]
        return toks

    def count_tokens(self, text: str) -> int:
        """Number of prompt tokens for ``text`` (including a BOS the model adds)."""
        return len(self.tokenize(text))

    def cohort_groups(self, n: int) -> int:
        """How many prompt groups of ``n`` samples form one cohort (see "Exact resume" in the module docstring)."""
        return max(1, self.max_seqs // max(1, n)) * COHORT_FILL

    def schedule_settings(self) -> dict[str, Any]:
        """The engine settings that, beside (model, rendered prompt, sampling, seed, N), decide a group's texts.

        They go into the run directory's cache key and settings check, so a resume with other values is refused
        instead of silently mixing texts that a single run would not have produced. ``n_ctx`` is not among them:
        it only caps a sample's length (recorded as ``finish_reason="length"``) and, through the default
        ``n_kv``, the cache size, which is listed; so ``--retry-errors`` with a larger ``--ctx`` stays possible.
        """
        settings = {
            "engine": "llama.cpp",
            "schedule": self.schedule,
            "sampler": SAMPLER_VERSION,
            "max_seqs": self.max_seqs,
            "cohort_fill": COHORT_FILL,
            "n_kv": self.n_kv,
            "n_batch": self.native.n_batch,
            "min_prefix": self.min_prefix,
            "lookahead": self.lookahead,
        }
        if self.kv_layout == "streams":  # only then: unified runs keep the keys they had before the layouts
            settings["kv_layout"] = "streams"
        return settings

    def describe(self) -> dict[str, Any]:
        """Facts for the manifest."""
        import llama_cpp

        return {
            "backend": "llama.cpp",
            "llama_cpp_python": llama_cpp.__version__,
            "system_info": self.native.system_info(),
            "n_threads": self.n_threads,
            "n_ctx": self.n_ctx,
            "n_kv": self.n_kv,
            "max_seqs": self.max_seqs,
            "n_batch": self.native.n_batch,
            "kv_unified": self.kv_layout == "unified",
            "kv_layout": self.kv_layout,
            "n_ctx_seq": self.native.n_ctx_seq,
            "sampler_chain": SAMPLER_CHAIN,
            "model_path": str(self.model_path),
            "n_ctx_train": self.native.n_ctx_train(),
            "chat_template": self.has_chat_template(),
            **load_policy(),
        }

    def close(self) -> None:
        """Free the context and the model (idempotent)."""
        self.native.close()
        self.kv.reset()
        self.workspace.close()

    def suspend(self) -> None:
        """Free the KV cache, llama.cpp's output and compute buffers and the sampler's buffer, keeping the model
        loaded: for a model that waits while another one generates (a pair holds both). The next
        :meth:`generate` makes a new context of the same size, so it starts like a fresh generator; the texts of
        a run do not change, since every cohort starts from a cleared cache (see "Exact resume")."""
        if self._busy:
            raise UsageError("cannot suspend a generator while it is generating")
        self.native.release_context()
        self.kv.reset()
        self.workspace.close()

    def __enter__(self) -> LlamaCppGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- generation ---------------------------------------------------------------------------------------------
    def generate(
        self, requests: Iterable[GenRequest], *, on_tokens: ProgressFn | None = None
    ) -> Iterator[GroupResult]:
        """Yield one GroupResult per request, in completion order (see the module docstring)."""
        if self.native.model is None:
            raise UsageError("the generator is closed")
        if self._busy:
            raise UsageError(
                "this generator is already generating; finish or close the other generate() first"
            )
        self.native.open_context()  # after suspend(): a new, empty context (a no-op otherwise)
        self._busy = True
        sched = Scheduler(self, iter(requests), on_tokens)
        try:
            yield from sched.run()
        finally:
            sched.abort()
            self._busy = False

    # helpers used by the scheduler ---------------------------------------------------------------------------
    def _plan(self, req: GenRequest) -> tuple[Group | None, GroupResult | None]:
        """Tokenize and split a request into jobs; or return an immediate (error/empty) result."""
        tokens = self.tokenize(req.prompt)
        n = len(tokens)
        if n == 0:
            return None, GroupResult(key=req.key, samples=[], prompt_tokens=0, error="empty_prompt")
        if n > self.n_ctx - 1:
            return None, GroupResult(key=req.key, samples=[], prompt_tokens=n, error=PROMPT_TOO_LONG)
        group = Group(req=req, tokens=tokens, samples=[None] * req.n)
        if req.n == 0:
            return None, GroupResult(key=req.key, samples=[], prompt_tokens=n)
        return group, None

    def _jobs(self, group: Group) -> list[Job]:
        n_prompt = len(group.tokens)
        max_new = min(group.req.sampling.max_tokens, self.n_ctx - n_prompt)
        per_job = max(1, min(self.max_seqs, (self.kv.budget - n_prompt) // max_new))
        idx = list(range(group.req.n))
        jobs = [Job(group, idx[i : i + per_job], max_new) for i in range(0, len(idx), per_job)]
        group.jobs_left = len(jobs)
        return jobs


__all__ = [
    "LlamaCppGenerator",
    "SAMPLER_CHAIN",
    "cells_per_sequence",
    "sequence_budget",
    "stream_budget",
    "stream_bytes",
    "stream_cells",
]
