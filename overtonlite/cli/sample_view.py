"""What ``overtonlite sample`` shows while it runs and when it is done: a rich progress line (groups done,
tokens/s, elapsed time, ETA) on a terminal, plain periodic lines in a log, and a summary table."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from overtonlite.cli.common import console, out_console


class ProgressDisplay:
    """Rich progress: groups done/total, tokens/s, elapsed time and ETA. When stderr is not a terminal (a log
    file, CI), a plain line with the same numbers every ``LOG_EVERY`` seconds instead.

    The ETA is the smaller of two estimates: time per finished group times the groups left (unknown until a group
    is done; groups run in parallel and often finish in waves), and the token budget left (N x max_tokens per
    group, an upper bound since samples may end early) at the current tokens/s.
    """

    LOG_EVERY = 10.0

    def __init__(self, *, n: int, max_tokens: int) -> None:
        self._per_group = max(1, n * max_tokens)
        self._plain = not console.is_terminal
        self._next_log = 0.0
        self._task: Any = None
        self._started = False
        if self._plain:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("groups"),
            TextColumn("{task.fields[tps]:>7.1f} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            transient=False,
        )

    def eta(self, event: Any) -> float | None:
        """Seconds left, or None before anything can be estimated."""
        left = event.groups_todo - event.groups_written
        if left <= 0:
            return 0.0
        guesses = []
        if event.groups_written:
            guesses.append(event.seconds / event.groups_written * left)
        if event.tokens > 0 and event.seconds > 0:
            budget = event.groups_todo * self._per_group
            guesses.append(max(0, budget - event.tokens) / (event.tokens / event.seconds))
        return min(guesses) if guesses else None

    def text(self, event: Any) -> str:
        """``12/40 groups, 85.3 tok/s, 0:42 elapsed, ETA 1:38`` for a progress event."""
        done = event.groups_total - event.groups_todo + event.groups_written
        tps = event.tokens / event.seconds if event.seconds > 0 else 0.0
        eta = self.eta(event)
        return (
            f"{done}/{event.groups_total} groups, {tps:.1f} tok/s, {_clock(event.seconds)} elapsed, "
            f"ETA {'?' if eta is None else _clock(eta)}"
        )

    def __call__(self, event: Any) -> None:
        if self._plain:
            self._log(event)
            return
        if event.kind == "start":
            self._progress.start()
            self._started = True
            done = event.groups_total - event.groups_todo
            self._task = self._progress.add_task(
                event.system,
                total=event.groups_total,
                completed=done,
                tps=0.0,
                eta="?" if event.groups_todo else "-",
            )
            if done:
                console.print(f"resuming: {done} of {event.groups_total} groups already in the run")
            return
        if self._task is None:
            return
        tps = event.tokens / event.seconds if event.seconds > 0 else 0.0
        eta = self.eta(event)
        fields = {"tps": tps, "eta": "?" if eta is None else _clock(eta)}
        if event.kind == "group":
            self._progress.update(self._task, advance=1, **fields)
        elif event.kind == "tokens":
            self._progress.update(self._task, **fields)
        elif event.kind == "stopping":
            console.print(
                "[yellow]stopping after the next group and any finishing with it (Ctrl-C again to stop now)[/]"
            )

    def _log(self, event: Any) -> None:
        now = time.monotonic()
        if event.kind == "start":
            before = event.groups_total - event.groups_todo
            already = f" ({before} already in the run)" if before else ""
            console.print(
                f"{event.system}: {event.groups_todo} of {event.groups_total} groups to sample{already}",
                highlight=False,
            )
            self._next_log = now + self.LOG_EVERY
        elif event.kind == "stopping":
            console.print(
                "stopping after the next group and any finishing with it (Ctrl-C again to stop now)"
            )
        elif event.kind in ("group", "tokens") and now >= self._next_log:
            if event.groups_written < event.groups_todo:
                self._next_log = now + self.LOG_EVERY
                console.print(f"{event.system}: {self.text(event)}", highlight=False)

    def stop(self) -> None:
        if self._started:
            self._progress.stop()
            self._started = False


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def print_summary(summary: Any, signature: str | None) -> None:
    from rich.table import Table

    table = Table(title=f"sample: {summary.system}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    rows: Sequence[tuple[str, str]] = (
        ("groups", f"{summary.groups_total} total"),
        ("new", str(summary.groups_done)),
        ("already there", str(summary.groups_skipped)),
        ("failed", str(summary.groups_failed)),
        ("tokens", str(summary.tokens)),
        ("time", f"{summary.seconds:.1f} s"),
        ("tokens/s", f"{summary.tokens_per_second:.1f}"),
        ("run", str(summary.out)),
        ("signature", signature or "-"),
    )
    for key, value in rows:
        table.add_row(key, value)
    out_console().print(table)  # the result: stdout
    if not summary.complete:
        missing = summary.groups_total - summary.groups_done - summary.groups_failed - summary.groups_skipped
        console.print(
            f"[yellow]{missing} group(s) were not returned by the backend; rerun to generate them.[/]"
        )
    if summary.groups_failed:
        console.print(
            f"[yellow]{summary.groups_failed} group(s) recorded with an error (e.g. prompt_too_long); "
            "they keep no samples. Rerun with --retry-errors after changing --ctx to regenerate them.[/]"
        )
