"""The Python API at the package top: cheap to import, and sample -> score -> read_run -> report with fakes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import overtonlite as ol
from overtonlite.backends.fake import FakeGenerator
from overtonlite.errors import DataError
from tests.exp_fakes import HashEmbedder

README = Path(__file__).resolve().parents[1] / "README.md"


def test_import_is_cheap() -> None:
    code = (
        "import sys, overtonlite; "
        "heavy = ('numpy', 'click', 'rich', 'llama_cpp', 'onnxruntime', 'overtonlite.scoring', "
        "'overtonlite.experiments', 'overtonlite.report'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_api_function_is_documented() -> None:
    root = Path(ol.__file__).parent
    for name in ol.__all__:
        if name != "__version__":
            assert getattr(ol, name).__doc__, name
            # a submodule of the same name would replace the function once it is imported
            assert not (root / name).exists() and not (root / f"{name}.py").exists(), name


def test_sample_score_read_report_with_fakes(tmp_path: Path) -> None:
    gen = FakeGenerator("fake-chat", chat_template=True)
    done = ol.sample(gen, "builtin:contested", out=tmp_path, n=3, limit=4, max_tokens=24, seed=1)
    assert done.groups_done == 4
    texts = ol.sample(
        gen,
        ["Is tea better than coffee?", "Should cities ban cars?"],
        out=tmp_path / "b",
        n=2,
        system="mine",
        mode="raw",
    )
    assert texts.groups_done == 2 and texts.system == "mine"
    summary = ol.score(tmp_path, embedder=HashEmbedder())
    assert summary.summary_path == tmp_path / "summary.json"
    run = ol.read_run(tmp_path)
    assert run.systems == ["fake-chat"] and run.sets == ["contested", "all"]
    both = run.value("fake-chat", "contested", "stance_both_share")
    assert both is not None and both["n_prompts"] == 4
    assert both == summary.systems["fake-chat"]["sets"]["contested"]["stance_both_share"]
    assert len(run.groups) == 4 and len(run.metrics) == 4 and run.claims == {}
    paths = ol.write_report(tmp_path, plots=False)
    assert "## Stance on contested prompts" in paths.md.read_text()
    with pytest.raises(DataError, match="run directory not found"):
        ol.read_run(tmp_path / "missing")


def test_readme_example_needs_one_import() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    imports = [line for line in code.splitlines() if re.match(r"\s*(import|from)\s", line)]
    assert imports == ["import overtonlite as ol"]
    compile(code, "README", "exec")


@pytest.mark.realmodel
def test_readme_example_runs(
    default_chat_path: Path, minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Python example, as written, on the real default chat model and embedder (smaller sizes)."""
    text = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", text.split("\n## ", 1)[0], flags=re.S)
    code = code.replace("n=5, limit=5, max_tokens=128", "n=2, limit=2, max_tokens=24")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README", "exec"), {})  # noqa: S102 - the project's own README example
    run = ol.read_run(tmp_path / "runs" / "demo")
    assert run.value("smollm2-135m-instruct", "contested", "stance_both_share")["n_prompts"] == 2
    assert (tmp_path / "runs" / "demo" / "report.html").is_file()
