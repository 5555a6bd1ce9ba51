"""Ctrl-C during generation: the first press stops at the next group boundary, the second within a second.

Python runs a signal handler only between bytecodes of the main thread, so while the main thread is inside one long
native call (llama.cpp evaluating a large prompt batch can take seconds on a busy CPU) two presses are merged into
one handler call that runs only when the call returns. To see every press at once, :func:`graceful_sigint` points
``signal.set_wakeup_fd`` at a pipe (the C-level handler writes one byte per delivered signal) and counts the bytes in
a watcher thread. On the second press the watcher sets ``hard``, raises the process-wide stop flag of
:mod:`overtonlite.backends.stop` (which an engine polls inside its native call) and, when the caller has not stopped
within :data:`HARD_STOP_SECONDS`, signals the main thread again, which then raises KeyboardInterrupt wherever it is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from overtonlite.backends import stop as stop_flag

HARD_STOP_SECONDS = 0.5
"""After a second Ctrl-C, how long to wait for a step boundary before stopping wherever the main thread is."""


@contextmanager
def graceful_sigint(
    stop: threading.Event,
    hard: threading.Event,
    on_first: Callable[[], None],
    has_steps: Callable[[], bool],
) -> Iterator[None]:
    """First Ctrl-C sets ``stop`` (the caller finishes the current group); a second sets ``hard`` (the caller
    stops at its next step boundary) and raises KeyboardInterrupt in the main thread when the backend reports no
    steps (``has_steps()`` false) or no step ends within :data:`HARD_STOP_SECONDS`.

    Only installed in the main thread and when SIGINT has Python's default handler; otherwise a no-op.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    state = _State(stop, hard, has_steps)
    handled = 0  # presses seen by the Python-level handler (used when there is no watcher)

    def handler(signum: int, frame: Any) -> None:
        nonlocal handled
        handled += 1
        if state.force.is_set() or (hard.is_set() and not has_steps()):
            raise KeyboardInterrupt
        if not stop.is_set():
            stop.set()
            on_first()
        if watcher is None and handled >= 2:
            state.second_press()
            if not has_steps():
                raise KeyboardInterrupt

    stop_flag.clear()
    watcher = _Watcher.start(state)
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if watcher is not None:
            watcher.stop()
        state.cancel()
        stop_flag.clear()


class _State:
    """What the handler, the watcher thread and the deadline timer share."""

    def __init__(self, stop: threading.Event, hard: threading.Event, has_steps: Callable[[], bool]) -> None:
        self.stop, self.hard, self.has_steps = stop, hard, has_steps
        self.force = threading.Event()
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None
        self.done = False

    def second_press(self) -> None:
        with self.lock:
            if self.hard.is_set() or self.done:
                return
            self.stop.set()
            self.hard.set()
            stop_flag.request_stop()  # an engine inside a long native call returns early
            self.timer = threading.Timer(HARD_STOP_SECONDS, self._deadline)
            self.timer.daemon = True
            self.timer.start()

    def _deadline(self) -> None:
        with self.lock:
            if self.done:
                return
            self.force.set()
        # a real signal to the main thread: it also breaks a blocking system call (a sleep, a socket read), which
        # _thread.interrupt_main() would not; the handler then raises
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def cancel(self) -> None:
        with self.lock:
            self.done = True
            if self.timer is not None:
                self.timer.cancel()


class _Watcher:
    """Counts SIGINT deliveries through ``signal.set_wakeup_fd`` in a thread (one byte per delivery)."""

    def __init__(self, read_fd: int, write_fd: int, state: _State) -> None:
        self.read_fd, self.write_fd, self.state = read_fd, write_fd, state
        self.presses = 0
        self.thread = threading.Thread(target=self._run, name="overtonlite-sigint", daemon=True)

    @classmethod
    def start(cls, state: _State) -> _Watcher | None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            previous = None
        if previous != -1:  # unavailable, or someone else (an event loop) uses it: leave it to them
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(r)
            os.close(w)
            return None
        watcher = cls(r, w, state)
        watcher.thread.start()
        return watcher

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.read_fd, 64)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return  # the write end was closed: stop() was called
            self.presses += data.count(bytes([signal.SIGINT]))
            if self.presses >= 2:
                self.state.second_press()

    def stop(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        with contextlib.suppress(OSError):
            os.close(self.write_fd)
        self.thread.join(timeout=1.0)
        with contextlib.suppress(OSError):
            os.close(self.read_fd)
