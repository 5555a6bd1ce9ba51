"""report.html in a real browser: headless Chromium renders the page, the plots decode and the key numbers show.

Needs Debian's ``chromium`` (``apt-get install -y chromium``). Skipped when it is absent, except under CI (env CI
set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from overtonlite.report import build_report
from tests.test_report import BANNER, SIGNATURE, write_run

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium() -> str:
    for name in (os.environ.get("OVERTONLITE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    message = "headless Chromium not found (install Debian's package: apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must provide it")
    pytest.skip(message)


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(profile)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, check=False)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(report.html, the DOM after load as Chromium serialises it, a full-page screenshot)."""
    browser = _chromium()
    root = tmp_path_factory.mktemp("browser")
    # the synthetic claims are rendered as written (not recomputed from the synthetic metrics)
    paths = build_report(write_run(root / "run"))
    url = paths.html.resolve().as_uri()
    dom = _run(browser, root / "profile-dom", "--virtual-time-budget=5000", "--dump-dom", url).stdout
    shot = root / "shot.png"
    _run(browser, root / "profile-shot", "--window-size=1200,2600", f"--screenshot={shot}", url)
    return paths.html, dom, shot


def test_page_renders_and_every_plot_decodes(rendered: tuple[Path, str, Path]) -> None:
    _, dom, _ = rendered
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))
    assert attrs["data-plots-expected"] == "6"
    # set by the page's own script after load: every <img> is complete with a natural width > 0
    assert attrs.get("data-plots-loaded") == "true", attrs
    assert attrs.get("data-plots-decoded") == "6"
    ids = set(re.findall(r'<img[^>]*\bid="([^"]+)"', dom))
    assert {
        "plot-length",
        "plot-lexical",
        "plot-semantic",
        "plot-similarity",
        "plot-stance",
        "plot-coverage",
    } <= ids


def test_key_numbers_and_banner_are_in_the_rendered_text(rendered: tuple[Path, str, Path]) -> None:
    _, dom, _ = rendered
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dom))
    assert BANNER in text
    assert "supported overton" in text and "inconclusive recoverability" in text
    assert "0.951 [0.900, 1.010]" in text
    assert "Prompts that overflowed the context: 1 of 35 prompt groups (2.9%)" in text
    assert SIGNATURE in text


def test_screenshot_is_not_blank(rendered: tuple[Path, str, Path]) -> None:
    from PIL import Image

    _, _, shot = rendered
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1200, 2600)
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, banner, tables and plots, not an empty page
    # the yellow cross-family banner is drawn near the top of the page
    banner_pixels = sum(count for count, (r, g, b) in colours if r > 250 and 240 < g < 252 and 215 < b < 232)
    assert banner_pixels > 5000
