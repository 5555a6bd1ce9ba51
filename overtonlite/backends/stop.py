"""A process-wide "stop generating now" flag (the second Ctrl-C), readable from native code.

:func:`overtonlite.sampling.sample_run` raises it on a second Ctrl-C; an engine that spends long stretches inside one
native call (llama.cpp evaluating a big prompt batch) can hand :func:`native_abort_callback` to the library so the
call returns early instead of finishing its batch. The flag is a two-byte C buffer (``b"\\x01\\x00"`` when set), and
the callback is libc's ``strlen`` on it: 1 when set, 0 when clear, checked without the GIL and at no measurable cost.
"""

from __future__ import annotations

import ctypes
from typing import Any

_FLAG = ctypes.create_string_buffer(2)


def request_stop() -> None:
    """Ask every generation in this process to stop as soon as it can."""
    _FLAG[0] = b"\x01"


def clear() -> None:
    """Forget a stop request (a new run starts)."""
    _FLAG[0] = b"\x00"


def stop_requested() -> bool:
    """True between :func:`request_stop` and :func:`clear`."""
    return _FLAG[0] != b"\x00"


def native_abort_callback(callback_type: Any) -> tuple[Any, ctypes.c_void_p] | None:
    """``(callback, data)`` for a C API shaped ``bool (*)(void *data)`` (llama.cpp's ``ggml_abort_callback``)
    that returns true once a stop is requested; None where libc's ``strlen`` cannot be found. Keep a reference to
    the returned callback for as long as the library may call it."""
    try:
        strlen = ctypes.CDLL(None).strlen
    except (OSError, AttributeError):
        return None
    address = ctypes.cast(strlen, ctypes.c_void_p).value
    if not address:
        return None
    return callback_type(address), ctypes.cast(_FLAG, ctypes.c_void_p)
