"""The sweep's report.html in headless Chromium: the page loads, every plot decodes (scaling plots, heatmap,
histograms included) and the sweep table shows. Skipped without Chromium, except under CI (see
tests/test_report_browser.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from overtonlite.experiments.sweep import sweep
from tests.exp_fakes import HashEmbedder
from tests.test_report_browser import _chromium, _run
from tests.test_sweep import _generators

SWEEP_PLOTS = {"plot-sweep-temperature", "plot-sweep-size", "plot-sweep-heatmap", "plot-sweep-histograms"}


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> str:
    browser = _chromium()
    root = tmp_path_factory.mktemp("sweep-browser")
    res = sweep(out=root / "run", quick=True, limit=2, generators=_generators(), embedder=HashEmbedder())
    url = Path(res.report.html).resolve().as_uri()
    return _run(browser, root / "profile", "--virtual-time-budget=5000", "--dump-dom", url).stdout


def test_sweep_plots_render(dom: str) -> None:
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))
    expected = int(attrs["data-plots-expected"])
    assert expected >= len(SWEEP_PLOTS)
    assert attrs.get("data-plots-loaded") == "true", attrs
    assert attrs.get("data-plots-decoded") == str(expected)
    ids = set(re.findall(r'<img[^>]*\bid="([^"]+)"', dom))
    assert SWEEP_PLOTS <= ids


def test_sweep_table_in_rendered_text(dom: str) -> None:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dom))
    assert "Sweep: temperature and model size" in text
    assert "chat:smollm2-135m-instruct@T1.0" in text and "base@T0.5" in text
    assert "Do different systems answer alike?" in text
