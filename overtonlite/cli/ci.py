"""The CI side of ``check`` and ``replicate --assert``: the options (``--strict``, ``--no-replay``, ``--junit-xml``,
``--summary-md``), the rendering of a check result, and a command class whose every ending closes with one line
that says what happened and which exit code follows (0 healthy, 1 a failed check or enforced claim direction,
2 a usage or input error)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from overtonlite.cli.common import console, print_json, print_result
from overtonlite.errors import OvertonliteError, UsageError

_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


class StatusCommand(click.Command):
    """A command whose every ending, errors included, closes with ``NAME: ... (exit N)`` on stderr.

    ``wants_status(params)`` says whether the line is wanted (``replicate`` prints it only with ``--assert``)."""

    wants_status: Callable[[dict[str, Any]], bool] = staticmethod(lambda params: True)  # type: ignore[assignment]

    def _fail(self, exc: click.ClickException | OvertonliteError, params: dict[str, Any]) -> None:
        code = exc.exit_code
        if isinstance(exc, OvertonliteError):
            click.echo(f"Error: {exc}", err=True)
        else:
            exc.show()
        if self.wants_status(params):
            what = "usage or input error" if code == 2 else "error"
            click.echo(f"{self.name}: {what} (exit {code})", err=True)
        raise click.exceptions.Exit(code)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as exc:
            if self.wants_status({}):
                self._fail(exc, {})
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, OvertonliteError) as exc:
            self._fail(exc, ctx.params)


def ci_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--strict``, ``--no-replay``, ``--junit-xml FILE`` and ``--summary-md FILE``."""
    path = click.Path(dir_okay=False, path_type=Path)
    options = [
        click.option(
            "--strict",
            is_flag=True,
            help="Fail (exit 1) on a claim direction that fails beyond its CI even on a cross-family pair.",
        ),
        click.option(
            "--no-replay",
            is_flag=True,
            help="Skip the determinism check (it generates the chat system's groups again).",
        ),
        click.option(
            "--junit-xml",
            "junit_xml",
            type=path,
            default=None,
            help="Write a JUnit XML report: one test case per check and per claim finding.",
        ),
        click.option(
            "--summary-md",
            "summary_md",
            type=path,
            default=None,
            help="Write a Markdown summary (e.g. to $GITHUB_STEP_SUMMARY).",
        ),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def check_output_paths(*paths: Path | None) -> None:
    """UsageError before anything runs when a report file cannot be written where it is asked for."""
    for p in paths:
        if p is None:
            continue
        if p.is_dir():
            raise UsageError(f"{p} is a directory; give a file name")
        parent = p.expanduser().resolve().parent
        try:  # a CI job asks for ci-out/check.xml before ci-out exists: create the folder
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot write {p}: cannot create the folder {parent} ({exc.strerror or exc})"
            ) from None


def render_check(result: Any) -> None:
    """The checks and findings as a rich table on stdout (a command's result)."""
    from rich.table import Table

    table = Table(
        title=f"{result.command}: pipeline checks and claim findings ({result.enforcement})",
        title_justify="left",
    )
    table.add_column("test")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for item in result.items:
        name = item.name if item.kind == "check" else f"{item.suite.removeprefix('claims.')}.{item.name}"
        table.add_row(name, f"[{_STYLE[item.status]}]{item.status}[/]", item.message)
    print_result(table)


def finish(
    ctx: click.Context, result: Any, *, junit_xml: Path | None, summary_md: Path | None, as_json: bool
) -> None:
    """Render (or print the JSON), write the CI files, close with the status line on stderr and exit with the
    check's code."""
    from overtonlite.experiments.ci_output import write_junit, write_summary_md

    if not as_json:
        render_check(result)
    if junit_xml is not None:
        console.print(f"wrote {write_junit(result, junit_xml)}", highlight=False)
    if summary_md is not None:
        console.print(f"wrote {write_summary_md(result, summary_md)}", highlight=False)
    if as_json:
        print_json(result.to_dict())
    click.echo(result.status_line, err=True)
    ctx.exit(result.exit_code)
