"""The OpenMP wait policy chosen before llama.cpp loads: from the CPUs busy now, never over the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from overtonlite.backends.llamacpp import native

STAT = """cpu  400 0 200 1000 50 0 0 0 0 0
cpu0 100 0 50 300 10 0 0 0 0 0
cpu1 300 0 150 700 40 0 0 0 0 0
intr 12345
ctxt 999
"""


def test_jiffies_sum_the_chosen_cpus_and_leave_out_idle_and_iowait() -> None:
    assert native._cpu_jiffies(STAT, None) == (600, 1650)
    assert native._cpu_jiffies(STAT, {0}) == (150, 460)
    assert native._cpu_jiffies(STAT, {1}) == (450, 1190)
    assert native._cpu_jiffies(STAT, {7}) is None  # no line for that CPU
    assert native._cpu_jiffies("intr 1\n", None) is None


def test_busy_is_judged_against_the_cpus_a_default_thread_count_leaves_free(monkeypatch) -> None:
    monkeypatch.setattr(native, "_allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(native, "physical_cores", lambda: 2)
    for busy, expected in [(0.0, False), (0.3, False), (0.5, True), (1.0, True), (2.0, True)]:
        monkeypatch.setattr(native, "busy_cpus", lambda seconds=0.0, b=busy: b)
        assert native._cpu_is_busy() is expected, busy
    monkeypatch.setattr(native, "_allowed_cpus", lambda: set(range(8)))
    monkeypatch.setattr(native, "physical_cores", lambda: 4)  # 4 logical CPUs stay free of our threads
    monkeypatch.setattr(native, "busy_cpus", lambda seconds=0.0: 4.0)
    assert native._cpu_is_busy() is False
    monkeypatch.setattr(native, "busy_cpus", lambda seconds=0.0: 4.6)
    assert native._cpu_is_busy() is True


def test_without_proc_stat_the_load_average_decides(monkeypatch) -> None:
    monkeypatch.setattr(native, "busy_cpus", lambda seconds=0.0: None)
    monkeypatch.setattr(native, "_allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5, 1.0, 1.0))
    assert native._cpu_is_busy() is True
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 1.0, 1.0))
    assert native._cpu_is_busy() is False


def _busy_until(end: Callable[[], object], *, settle: float) -> float | None:
    """busy_cpus over 0.5 s, ``settle`` seconds after the caller started its load; then ``end`` stops the load."""
    try:
        time.sleep(settle)
        return native.busy_cpus(0.5)
    finally:
        end()


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs /proc/stat")
def test_a_busy_process_is_seen_at_once() -> None:
    """The measurement is of now: a CPU-bound child counts as about one busy CPU while it runs (the load
    average would take a minute to say so)."""
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    during = _busy_until(lambda: (child.kill(), child.wait()), settle=0.3)
    assert during is not None and during >= 0.8, during


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs /proc/stat")
def test_this_process_own_threads_are_not_other_work() -> None:
    """A thread of this very process spinning beside the measurement is not a reason for PASSIVE."""
    import threading

    baseline = native.busy_cpus(0.5)  # whatever else the machine is doing
    assert baseline is not None
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    t = threading.Thread(target=spin)
    t.start()
    during = _busy_until(lambda: (stop.set(), t.join()), settle=0.1)
    assert during is not None and during < baseline + 0.5, (baseline, during)


def _policy_in_fresh_process(busy: float, env: dict[str, str]) -> str:
    """OMP_WAIT_POLICY after import_llama in a new interpreter whose busy_cpus reports ``busy``."""
    code = (
        "import os\n"
        "import overtonlite.backends.llamacpp.native as n\n"
        f"n.busy_cpus = lambda seconds=0.0: {busy!r}\n"
        "n.import_llama()\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), n.load_policy()['busy_cpus_at_load'])\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_passive_only_when_busy_and_never_over_a_choice_the_user_made() -> None:
    pytest.importorskip("llama_cpp")
    many = float(os.cpu_count() or 1)  # every CPU busy: above any machine's threshold
    assert _policy_in_fresh_process(many, {}) == f"PASSIVE {many}"
    assert _policy_in_fresh_process(0.0, {}) == "None 0.0"
    assert _policy_in_fresh_process(many, {"OMP_WAIT_POLICY": "active"}).split()[0] == "active"
    # libgomp's spin count is a choice too: it overrides the policy's spinning, so none is set beside it
    assert _policy_in_fresh_process(many, {"GOMP_SPINCOUNT": "300"}).split()[0] == "None"
