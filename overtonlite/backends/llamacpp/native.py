"""Thin, typed helpers over llama.cpp's low-level ctypes API (``llama_cpp.llama_cpp``).

Only :mod:`overtonlite.backends.llamacpp` uses this module. ``llama_cpp`` is imported lazily inside functions, so
importing this module stays cheap. :class:`NativeModel` owns one model, one context (a unified KV cache shared by
``n_seq_max`` sequences, or one KV stream per sequence) and one reusable batch; it frees them in
:meth:`NativeModel.close`.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from overtonlite.backends.stop import native_abort_callback, stop_requested
from overtonlite.config import SamplingConfig
from overtonlite.errors import ModelLoadError, missing_dependency
from overtonlite.util import physical_cores as physical_cores  # re-exported: one implementation, in util

_QUIET_CALLBACK: Any = None  # keep the ctypes callback alive for the life of the process
_BACKEND_READY = False


BUSY_SAMPLE_SECONDS = 0.25  # how long import_llama watches the CPUs before choosing an OpenMP wait policy
_BUSY: dict[str, Any] = {}  # what import_llama measured: {"busy_cpus": float | None}


def _cpu_jiffies(stat: str, cpus: set[int] | None) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over the per-CPU lines of ``/proc/stat`` text (only ``cpus``, when given).

    Busy is everything but idle and iowait; guest time is already inside user / nice, so it is not added twice.
    None when the text has no per-CPU line for those CPUs."""
    busy = total = 0
    found = False
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        vals = [int(v) for v in rest.split()[:8]]
        if len(vals) < 4:
            continue
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        busy += sum(vals) - idle
        total += sum(vals)
        found = True
    return (busy, total) if found else None


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _count(cpus: set[int] | None) -> int:
    return len(cpus) if cpus else (os.cpu_count() or 1)


def busy_cpus(seconds: float = BUSY_SAMPLE_SECONDS) -> float | None:
    """How many of this process's CPUs other work keeps busy right now (0.0 .. their count), measured from
    ``/proc/stat`` over ``seconds`` while this thread sleeps (CPU time of this process's own other threads in
    that window is not counted); None where there is no ``/proc/stat``."""
    cpus = _allowed_cpus()
    try:
        with open("/proc/stat") as fh:
            before = _cpu_jiffies(fh.read(), cpus)
        own = time.process_time()
        start = time.monotonic()
        time.sleep(seconds)
        own = time.process_time() - own
        wall = time.monotonic() - start
        with open("/proc/stat") as fh:
            after = _cpu_jiffies(fh.read(), cpus)
    except (OSError, ValueError):
        return None
    if before is None or after is None or after[1] <= before[1]:
        return None
    n = _count(cpus)
    busy = n * (after[0] - before[0]) / (after[1] - before[1]) - own / max(wall, 1e-6)
    return min(float(n), max(0.0, busy))


def _cpu_is_busy() -> bool:
    """Whether other work would take CPUs from llama.cpp's threads: it keeps at least as many CPUs busy as a
    default thread count (one per physical core) leaves free, plus half a CPU. Measured now (see
    :func:`busy_cpus`), not from the load average, which lags by a minute: right after a build or another job
    it still reads "busy" on an idle machine, and PASSIVE there costs most of the decode speed (SmolLM2-135M,
    2 threads, one sequence: 50 against 180 tok/s). Without ``/proc/stat``, the 1-minute load average at or
    above the CPU count."""
    n = _count(_allowed_cpus())
    spare = max(0, n - physical_cores()) + 0.5
    busy = busy_cpus()
    _BUSY["busy_cpus"] = busy
    if busy is not None:
        return busy >= spare
    try:
        return os.getloadavg()[0] >= n
    except OSError:  # no load average on this platform
        return False


def import_llama() -> Any:
    """``llama_cpp.llama_cpp`` or a MissingDependencyError naming the fix.

    OpenMP worker threads busy-wait at llama.cpp's barriers by default. On an idle CPU that is the fastest
    choice, but on a CPU already busy with other work spinning threads wait for partners that are not running,
    while the PASSIVE policy costs most of the speed on an idle one (measured on a 2-core machine; see the
    README). So unless the user chose a policy (``OMP_WAIT_POLICY``, or libgomp's ``GOMP_SPINCOUNT``), PASSIVE is
    set when other work keeps the CPUs busy right now (:func:`_cpu_is_busy`), before libgomp loads, i.e. before
    the first import of llama_cpp. The policy in force is recorded in the manifest
    (``describe()["omp_wait_policy"]``, with the CPUs found busy).
    """
    if (
        "llama_cpp.llama_cpp" not in sys.modules
        and "OMP_WAIT_POLICY" not in os.environ
        and "GOMP_SPINCOUNT" not in os.environ
        and _cpu_is_busy()
    ):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import llama_cpp.llama_cpp as ll
    except ImportError as exc:
        raise missing_dependency("llama_cpp", package="llama-cpp-python") from exc
    return ll


def load_policy() -> dict[str, Any]:
    """The OpenMP wait policy llama.cpp runs under and what it was chosen from (for manifests)."""
    busy = _BUSY.get("busy_cpus")
    return {
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "busy_cpus_at_load": None if busy is None else round(busy, 2),
    }


def set_logging(verbose: bool) -> None:
    """Silence llama.cpp's own stderr logging (default), or route it to stderr again with ``verbose``."""
    global _QUIET_CALLBACK, _BACKEND_READY
    ll = import_llama()
    if verbose:
        import llama_cpp._logger as lg

        lg.set_verbose(True)
        ll.llama_log_set(lg.llama_log_callback, ctypes.c_void_p(0))
    else:
        if _QUIET_CALLBACK is None:
            _QUIET_CALLBACK = ll.llama_log_callback(lambda level, text, data: None)
        ll.llama_log_set(_QUIET_CALLBACK, ctypes.c_void_p(0))
    if not _BACKEND_READY:
        ll.llama_backend_init()
        _BACKEND_READY = True


class NativeModel:
    """One llama.cpp model + context + batch. Raises ModelLoadError with a one-line message on load failure."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_kv: int,
        n_seq_max: int,
        n_batch: int,
        n_threads: int,
        verbose: bool = False,
        unified: bool = True,
    ) -> None:
        """``n_kv`` is the KV cells in all; with ``unified=False`` llama.cpp gives each of the ``n_seq_max``
        sequences a stream of its own of ``n_kv / n_seq_max`` cells (rounded up to 256, see :attr:`n_ctx_seq`)."""
        ll = self.ll = import_llama()
        set_logging(verbose)
        self.path = Path(path)
        self.model = None
        self.ctx = None
        self._batch = None
        mparams = ll.llama_model_default_params()
        model = ll.llama_model_load_from_file(str(self.path).encode("utf-8"), mparams)
        if not model:
            raise ModelLoadError(
                f"cannot load model {self.path}: llama.cpp rejected the file (truncated or corrupt GGUF?)"
            )
        self.model = model
        self.vocab = ll.llama_model_get_vocab(model)
        self.n_vocab = int(ll.llama_vocab_n_tokens(self.vocab))
        self.n_swa = int(ll.llama_model_n_swa(model))  # sliding-window attention size (0: none)
        self._params = (n_kv, n_batch, n_seq_max, n_threads, unified)
        self._pieces: dict[int, bytes] = {}
        self._abort: Any = None
        self.mem = None
        try:
            self.open_context()
        except ModelLoadError:
            self.close()
            raise
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(ll.llama_vocab_bos(self.vocab))
        self.eos = int(ll.llama_vocab_eos(self.vocab))

    def open_context(self) -> None:
        """Create the context and the batch (after :meth:`release_context`; a no-op while there is one).

        The new context starts with an empty KV cache; its sizes are the constructor's, so ``n_kv``,
        ``n_ctx_seq`` and ``n_batch`` come out the same."""
        if self.ctx is not None:
            return
        ll = self.ll
        n_kv, n_batch, n_seq_max, n_threads, unified = self._params
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_kv
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = n_seq_max
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.kv_unified = unified
        cparams.no_perf = True
        ctx = ll.llama_init_from_model(self.model, cparams)
        if not ctx:
            raise ModelLoadError(
                f"cannot create a llama.cpp context for {self.path} (n_kv={n_kv}, n_seq_max={n_seq_max})"
            )
        self.ctx = ctx
        if self._abort is None:  # a second Ctrl-C ends a long decode early
            self._abort = native_abort_callback(ll.ggml_abort_callback)
        if self._abort is not None:
            ll.llama_set_abort_callback(ctx, *self._abort)
        self.mem = ll.llama_get_memory(ctx)
        self.n_kv = int(ll.llama_n_ctx(ctx))
        # the cells one sequence can hold (all of them when unified)
        self.n_ctx_seq = int(ll.llama_n_ctx_seq(ctx))
        self.n_batch = int(ll.llama_n_batch(ctx))
        self._batch = ll.llama_batch_init(self.n_batch, 0, 1)
        # the last decode's outputs (see logits_rows) and a kept view of llama.cpp's logits buffer
        self._ranks: list[int] = []
        self._n_outputs = 0
        self._logits_view: np.ndarray | None = None
        self._logits_addr = 0

    def release_context(self) -> None:
        """Free the context (its KV cache, logits and compute buffers) and the batch, keeping the model loaded:
        the memory of a model that waits while another one generates. :meth:`open_context` makes a new one."""
        ll = self.ll
        self._logits_view = None
        self._logits_addr = 0
        self._ranks = []
        self._n_outputs = 0
        if self._batch is not None:
            ll.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx is not None:
            ll.llama_free(self.ctx)
            self.ctx = None
            self.mem = None

    # -- vocabulary ---------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as a string, or None."""
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.ll.llama_model_meta_val_str(self.model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def token_text(self, token: int) -> str:
        """The vocabulary entry of a (special) token, e.g. ``<s>``; "" for -1."""
        if token < 0:
            return ""
        raw = self.ll.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """Tokenize; never adds a second BOS when the text already starts with one."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        while True:
            arr = (self.ll.llama_token * cap)()
            n = self.ll.llama_tokenize(self.vocab, data, len(data), arr, cap, add_special, parse_special)
            if n >= 0:
                break
            cap = -n
        toks = list(arr[:n])
        if len(toks) >= 2 and toks[0] == toks[1] == self.bos and self.bos >= 0:
            toks = toks[1:]
        return toks

    def piece(self, token: int) -> bytes:
        """The bytes a generated token contributes to the text (special tokens render as nothing)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        size = 32
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.ll.llama_token_to_piece(self.vocab, token, buf, size, 0, False)
            if n >= 0:
                break
            size = -n
        out = buf.raw[:n]
        self._pieces[token] = out
        return out

    def is_eog(self, token: int) -> bool:
        return bool(self.ll.llama_vocab_is_eog(self.vocab, token))

    # -- sampling -------------------------------------------------------------------------------------------------
    def make_sampler(self, sampling: SamplingConfig, seed: int) -> Any:
        """A fresh sampler chain: top_k -> top_p -> min_p -> temp -> dist(seed) (greedy at T=0).

        The repetition penalty comes first but is not part of the chain: :func:`.fastsample.penalize_rows`
        applies it to the logits rows (see the module docstring of :mod:`overtonlite.backends.llamacpp`).
        """
        ll = self.ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if sampling.temperature <= 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
            return chain
        if sampling.top_k > 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(sampling.min_p, 1))
        if sampling.temperature != 1.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(sampling.temperature))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def logits_rows(self, idxs: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """The logits buffer of the last decode as an (outputs x n_vocab) float32 view, and the row of each
        batch index in ``idxs`` (a view: the penalties :func:`.fastsample.penalize_rows` applies in place show up in it).

        llama.cpp stores the outputs in batch order (``llama_get_logits`` settles that order), so a batch index's
        row is its rank among the entries that asked for logits. The numpy view is kept while llama.cpp keeps
        its output buffer (it reallocates only to grow): right after a decode, when the weights have pushed the
        interpreter out of the CPU caches, every numpy call costs tens of microseconds.
        """
        import numpy as np

        base = self.ll.llama_get_logits(self.ctx)  # settles the output order first
        addr = ctypes.cast(base, ctypes.c_void_p).value or 0
        n_out = self._n_outputs
        view = self._logits_view
        if view is None or self._logits_addr != addr or view.shape[0] < n_out:
            view = self._logits_view = np.ctypeslib.as_array(base, shape=(n_out, self.n_vocab))
            self._logits_addr = addr
        ranks = self._ranks
        return view[:n_out], [ranks[i] for i in idxs]

    def sample(self, sampler: Any, idx: int) -> int:
        return int(self.ll.llama_sampler_sample(sampler, self.ctx, idx))

    def sync_outputs(self) -> None:
        """Wait for the last decode and settle the output buffers (makes later logits reads read-only)."""
        self.ll.llama_synchronize(self.ctx)
        self.ll.llama_get_logits(self.ctx)

    def free_sampler(self, sampler: Any) -> None:
        self.ll.llama_sampler_free(sampler)

    # -- KV cache and decoding --------------------------------------------------------------------------------------
    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self.ll.llama_memory_seq_cp(self.mem, src, dst, p0, p1)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        """Drop the sequence's cells at positions ``p0 <= pos < p1`` (-1: open end; all of them by default)."""
        self.ll.llama_memory_seq_rm(self.mem, seq, p0, p1)

    def seq_state(self, seq: int) -> tuple[Any, int]:
        """A copy of the sequence's KV cells, their positions and K/V values bit for bit
        (``llama_state_seq_get_data``): ``(buffer, bytes)`` for :meth:`set_seq_state`."""
        size = int(self.ll.llama_state_seq_get_size(self.ctx, seq))
        buf = (ctypes.c_uint8 * max(1, size))()
        got = int(self.ll.llama_state_seq_get_data(self.ctx, buf, size, seq))
        if got <= 0 or got > size:
            from overtonlite.errors import OvertonliteError

            raise OvertonliteError(
                f"llama.cpp could not copy the KV cells of sequence {seq} ({got} of {size} bytes)"
            )
        return buf, got

    def set_seq_state(self, seq: int, state: tuple[Any, int]) -> None:
        """Put a :meth:`seq_state` copy back into (empty) sequence ``seq``; llama.cpp places its cells in the lowest
        free cells it finds."""
        buf, size = state
        if int(self.ll.llama_state_seq_set_data(self.ctx, buf, size, seq)) != size:
            from overtonlite.errors import OvertonliteError

            raise OvertonliteError(
                f"llama.cpp could not restore the KV cells of sequence {seq} (the cache is full)"
            )

    def clear(self) -> None:
        self.ll.llama_memory_clear(self.mem, False)

    def decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Decode ``(token, pos, seq_id, want_logits)`` entries in one ``llama_decode`` (at most n_batch)."""
        b = self._batch
        ranks = self._ranks = []  # batch index -> row of its logits (-1: none)
        n_out = 0
        for i, (tok, pos, seq, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
            ranks.append(n_out if logits else -1)
            n_out += bool(logits)
        b.n_tokens = len(entries)
        self._n_outputs = n_out
        rc = self.ll.llama_decode(self.ctx, b)
        if rc == 2 and stop_requested():
            raise KeyboardInterrupt  # aborted by the stop flag (second Ctrl-C); the caller discards this batch
        if rc != 0:
            from overtonlite.errors import OvertonliteError

            raise OvertonliteError(
                f"llama_decode failed with code {rc} ({len(entries)} tokens); the KV cache may be full"
            )

    def system_info(self) -> str:
        raw = self.ll.llama_print_system_info()
        return raw.decode("utf-8", errors="replace").strip() if raw else ""

    def n_ctx_train(self) -> int:
        return int(self.ll.llama_model_n_ctx_train(self.model))

    def close(self) -> None:
        """Free batch, context and model (idempotent)."""
        ll = self.ll
        self.release_context()
        if self.model is not None:
            ll.llama_model_free(self.model)
            self.model = None
