"""``replicate --from``: verdicts from existing generations, with no model loaded (issue 9, item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from overtonlite.cli import main
from overtonlite.errors import UsageError
from overtonlite.experiments.from_generations import parse_roles, replicate_from
from tests.exp_fakes import HashEmbedder

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent.parent / "shared" / "reference" / "lima-oe" / "responses.jsonl"
if not REFERENCE.is_file():
    REFERENCE = Path("/work/shared/reference/lima-oe/responses.jsonl")
TOPICS = ["tea", "rain", "bread", "chess", "bikes", "stars", "maps", "rivers"]


def write_generations(path: Path, *, contested: bool = False) -> Path:
    """Four systems on eight open-ended prompts (and, if asked, four contested yes/no prompts)."""
    rows = []
    for i, topic in enumerate(TOPICS):
        for system, make in (
            ("m-base", lambda k, t=topic: f"{t} {k} is odd and {t} is old"),
            (
                "m-chat",
                lambda k, t=topic: f"Sure! A guide to {t}: learn {t} basics, practise {t}, enjoy {t} {k}.",
            ),
            ("m-icl", lambda k, t=topic: f"{t} basics: learn {t}, practise {k}."),
            ("m-hint", lambda k, t=topic: f"A guide to {t}: learn {t} basics, practise {t} {k}."),
        ):
            rows.append(
                {
                    "system": system,
                    "prompt_id": i,
                    "prompt": f"How do I get into {topic}?",
                    "samples": [make(k) for k in range(4)],
                }
            )
    if contested:
        for j, q in enumerate(
            [
                "Is coffee healthy?",
                "Should cities ban cars?",
                "Is chess a sport?",
                "Are cats better than dogs?",
            ]
        ):
            for system, texts in (
                ("m-base", ["Yes.", "No.", "Yes, it is.", "No, never."]),
                ("m-chat", ["It depends: some say yes, others say no."] * 4),
            ):
                rows.append(
                    {
                        "system": system,
                        "prompt_id": f"c{j}",
                        "prompt": q,
                        "set": "contested",
                        "samples": texts,
                    }
                )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROLES = ["base=m-base", "chat=m-chat", "urial=m-icl", "hinted=m-hint"]


def test_parse_roles() -> None:
    roles = parse_roles(["base=a", "chat=b", "hinted=c", "hinted=d"])
    assert (roles.base, roles.chat, roles.urial, roles.hinted) == ("a", "b", None, ("c", "d"))
    assert roles.mapping() == {"a": "base", "b": "chat", "c": "c", "d": "d"}
    for bad, msg in (
        (["base=a"], "--role chat"),
        (["base=a", "chat=b", "judge=c"], "unknown role"),
        (["base=a", "chat=a"], "more than one role"),
        (["base=a", "base=b", "chat=c"], "twice"),
        (["base", "chat=b"], "ROLE=SYSTEM"),
        (["base=a", "chat=b", "hinted=chat"], "role name"),
    ):
        with pytest.raises(UsageError, match=msg):
            parse_roles(bad)


def test_from_generations_writes_results_and_report(tmp_path: Path) -> None:
    src = write_generations(tmp_path / "gens.jsonl")
    res = replicate_from(src, roles=ROLES, out=tmp_path / "out", embedder=HashEmbedder(), seed=0)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (tmp_path / "out" / "report.md").is_file() and (tmp_path / "out" / "report.html").is_file()
    assert results["settings"]["from_generations"]["roles"]["hinted"] == ["m-hint"]
    assert results["truncation"] == {}  # the input records no finish reasons
    overton = results["claims"]["overton"]
    by_name = {f["name"]: f for f in overton["findings"]}
    assert by_name["both_share"]["verdict"] == "not measured"
    assert by_name["yes_no_split"]["verdict"] == "not measured"
    assert by_name["length"]["verdict"] == "supported"  # chat answers are longer in this input
    assert "all samples" in by_name["length"]["line"]
    assert overton["verdict"] != "not measured"
    recov = results["claims"]["recoverability"]
    assert "'m-hint'" in recov["findings"][0]["statement"]
    assert any(f["name"] == "beats_urial" for f in recov["findings"])
    assert res.report is not None
    samples = [json.loads(x) for x in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert {s["system"] for s in samples} == {"base", "chat", "urial", "m-hint"}
    assert {s["source_system"] for s in samples if s["system"] == "chat"} == {"m-chat"}
    # the same directory can be judged again (it is ours)
    replicate_from(
        src, roles=ROLES, out=tmp_path / "out", embedder=HashEmbedder(), seed=0, report=False, limit=4
    )
    assert json.loads((tmp_path / "out" / "results.json").read_text())["settings"]["prompts"] == {
        "selected": 4
    }


def test_contested_prompts_are_measured_and_roles_are_optional(tmp_path: Path) -> None:
    src = write_generations(tmp_path / "gens.jsonl", contested=True)
    res = replicate_from(
        src,
        roles={"base": "m-base", "chat": "m-chat"},
        out=tmp_path / "out",
        embedder=HashEmbedder(),
        seed=0,
        report=False,
    )
    by_name = {f["name"]: f for f in res.claims["overton"]["findings"]}
    assert by_name["both_share"]["verdict"] != "not measured"
    assert by_name["both_share"]["estimate"] > 0.5  # chat says "both" where base says yes or no
    assert res.claims["recoverability"]["verdict"] == "not measured"  # no ICL condition in the roles


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    src = write_generations(tmp_path / "gens.jsonl")
    with pytest.raises(UsageError, match="no system 'nope'"):
        replicate_from(src, roles=["base=nope", "chat=m-chat"], out=tmp_path / "o1", embedder=HashEmbedder())
    assert not (tmp_path / "o1").exists()  # nothing is written before the input and the roles check out
    run = tmp_path / "generated"
    run.mkdir()
    (run / "samples.jsonl").write_text(
        json.dumps({"system": "chat", "prompt_id": "1", "samples": ["x"]}) + "\n"
    )
    with pytest.raises(UsageError, match="did not write"):
        replicate_from(src, roles=ROLES, out=run, embedder=HashEmbedder())
    assert "source_system" not in (run / "samples.jsonl").read_text()  # nothing was overwritten


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_generations(tmp_path / "gens.jsonl")
    code, _, err = _run_cli(["replicate", "--out", str(tmp_path / "o"), "--role", "base=m-base"], capsys)
    assert code == 2 and "only apply with --from" in err
    code, _, err = _run_cli(
        ["replicate", "--from", str(src), "--role", "base=m-base", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "--role chat" in err
    code, _, err = _run_cli(
        [
            "replicate",
            "--from",
            str(src),
            *sum((["--role", r] for r in ROLES), []),
            "--quick",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and "--quick" in err


_NO_MODEL = """
import sys
import overtonlite.backends as backends
def refuse(*a, **k):
    raise SystemExit("a generator was opened")
backends.open_generator = refuse
import overtonlite.experiments.common as common
common.open_pair = refuse
common.open_model = refuse
from overtonlite.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    if exc.code:
        raise
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "llama_cpp")
assert not loaded, loaded
print("NO-MODEL-OK")
"""


@pytest.mark.skipif(not REFERENCE.is_file(), reason="the authors' LIMA-OE generations are not available")
def test_cli_on_the_reference_loads_no_model(tmp_path: Path) -> None:
    """The real command on the authors' Llama-2 generations (first 3 prompts), real default embedder."""
    out = tmp_path / "ref"
    argv = [
        "replicate",
        "--from",
        str(REFERENCE),
        "--role",
        "base=llama-2-base",
        "--role",
        "chat=llama-2-chat",
        "--role",
        "urial=llama-2-icl",
        "--role",
        "hinted=llama-2-icl-chat-summary",
        "--limit",
        "3",
        "--same-family",
        "--out",
        str(out),
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_MODEL, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "NO-MODEL-OK" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert (out / "report.md").is_file()
    assert results["pair"]["same_family"] is True and results["banner"] is None
    assert set(results["claims"]) == {"overton", "recoverability"}
    assert results["settings"]["prompts"] == {"selected": 3}
    assert "llama-2-icl-chat-summary" in results["claims"]["recoverability"]["findings"][0]["statement"]


def test_cli_loads_no_model_on_any_generations(tmp_path: Path) -> None:
    """Without the reference data too: the real command (default embedder) opens no generator, imports no llama_cpp."""
    src = write_generations(tmp_path / "gens.jsonl")
    out = tmp_path / "run"
    argv = [
        "replicate",
        "--from",
        str(src),
        *sum((["--role", r] for r in ROLES), []),
        "--limit",
        "3",
        "--no-report",
        "--out",
        str(out),
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_MODEL, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "NO-MODEL-OK" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["prompts"] == {"selected": 3} and results["banner"]  # families unknown: warned


def test_cli_from_with_assert_writes_junit_and_exits_by_its_failures(tmp_path: Path) -> None:
    """`replicate --from ... --assert --junit-xml` runs the checks of `check` (no replay) on imported generations."""
    import xml.etree.ElementTree as ET

    src = write_generations(tmp_path / "gens.jsonl")
    out, junit = tmp_path / "run", tmp_path / "r.xml"
    argv = [
        "replicate",
        "--from",
        str(src),
        *sum((["--role", r] for r in ROLES), []),
        "--limit",
        "4",
        "--out",
        str(out),
        "--assert",
        "--junit-xml",
        str(junit),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = _NO_MODEL.replace("    if exc.code:\n        raise\n", "    print('EXIT', exc.code or 0)\n")
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )
    assert "NO-MODEL-OK" in proc.stdout, proc.stderr[-2000:]
    code = int(proc.stdout.split("EXIT", 1)[1].split()[0]) if "EXIT" in proc.stdout else 0
    suites = ET.parse(junit).getroot()
    cases = suites.findall(".//testcase")
    failures = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert cases and any(c.get("name", "").startswith("replay") is False for c in cases)
    assert code == (1 if failures else 0)
    assert proc.stderr.strip().splitlines()[-1].endswith(f"(exit {code})")


def test_limit_applies_per_prompt_set(tmp_path: Path) -> None:
    """--limit keeps the first K prompts of each set, so a mixed file keeps its contested prompts."""
    src = write_generations(tmp_path / "gens.jsonl", contested=True)
    res = replicate_from(
        src,
        roles=["base=m-base", "chat=m-chat"],
        out=tmp_path / "run",
        embedder=HashEmbedder(),
        limit=2,
        report=False,
    )
    kept = {
        (r["set"], r["prompt_id"])
        for r in (json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines())
    }
    assert {s for s, _ in kept} == {"open-ended", "contested"} and len({p for _, p in kept}) == 4
    assert res.claims["overton"]["findings"]
