"""`overtonlite check` as a CI smoke test: the pipeline checks, the finding statuses, the exit codes and the JUnit XML
and Markdown outputs (read back with real XML parsers, not string matching)."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from overtonlite.backends.fake import FakeGenerator
from overtonlite.experiments import check as ck
from overtonlite.experiments import replicate as rep
from overtonlite.experiments.check_ranges import metric_range, out_of_range, record_problems, summary_problems
from overtonlite.experiments.ci_output import junit_xml, summary_markdown, write_junit, write_summary_md
from tests.exp_fakes import HashEmbedder, fake_pair

CHECKS = ("samples", "metric_ranges", "summary_ranges", "results", "self_baseline", "determinism", "report")
STATUS_LINE = re.compile(r"^(check|replicate): (.+) \(exit (\d)\)$")


def _fake_chat(mean_words: int = 40) -> FakeGenerator:
    return FakeGenerator("fake-chat", chat_template=True, model_sha256="c" * 64, mean_words=mean_words)


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quick replicate run on the fake pair, with its report (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp("fake-run") / "run"
    rep.replicate(out=out, quick=True, models=fake_pair(), embedder=HashEmbedder(), report=True)
    return out


@pytest.fixture
def run(fake_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(fake_run, dst)
    return dst


def _items(result: ck.CheckResult) -> dict[str, ck.CheckItem]:
    return {i.name: i for i in result.checks}


def test_healthy_run_passes_every_check(run: Path) -> None:
    res = ck.check_run(run, open_chat=_fake_chat)
    items = _items(res)
    assert tuple(items) == CHECKS
    assert all(i.status == ck.PASSED for i in items.values()), [i.message for i in items.values()]
    assert "48/48 texts identical" in items["determinism"].message
    assert items["self_baseline"].estimate is not None and items["self_baseline"].estimate > 0
    # the fake pair is cross-family: not-supported findings are reported (skipped), not failed
    assert res.enforced is False and res.exit_code == 0
    assert res.status_line == "check: healthy (exit 0)"
    findings = json.loads((run / "results.json").read_text())["claims"]
    n_findings = sum(len(c["findings"]) for c in findings.values())
    assert len(res.findings) == n_findings
    for item in res.findings:
        if item.verdict == "not supported":
            assert item.status == ck.SKIPPED and "not enforced" in item.message
    assert json.loads((run / ck.CHECK_FILE).read_text())["exit_code"] == 0


def test_strict_and_same_family_enforce_claim_directions(run: Path) -> None:
    res = ck.check_run(run, strict=True, replay=False)
    bad = [i for i in res.findings if i.verdict == "not supported"]
    assert bad, "the fake pair is expected to miss at least one direction"
    assert all(i.status == ck.FAILED for i in bad)
    assert res.exit_code == 1
    assert res.status_line == f"check: {len(bad)} claim finding{'s' if len(bad) > 1 else ''} not supported (exit 1)"
    assert _items(res)["determinism"].status == ck.SKIPPED
    # a same-family pair enforces them without --strict
    data = json.loads((run / "results.json").read_text())
    data["pair"]["same_family"] = True
    (run / "results.json").write_text(json.dumps(data))
    res2 = ck.check_run(run, replay=False, report=False)
    assert res2.enforced and res2.exit_code == 1
    assert {i.name for i in res2.findings if i.status == ck.FAILED} == {i.name for i in bad}


def test_determinism_failure_is_caught(run: Path) -> None:
    res = ck.check_run(run, open_chat=lambda: _fake_chat(mean_words=7))  # same key, other texts
    det = _items(res)["determinism"]
    assert det.status == ck.FAILED and "differs" in det.message
    assert res.exit_code == 1 and res.status_line == "check: 1 check failed (exit 1)"


def _rewrite_jsonl(path: Path, change) -> None:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for rec in recs:
        change(rec)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_out_of_range_metric_fails(run: Path) -> None:
    def bump(rec):
        if rec["system"] == "base" and rec["prompt_id"] == "oe-001":
            rec["cosine"] = 1.5
    _rewrite_jsonl(run / "metrics.jsonl", bump)
    res = ck.check_run(run, replay=False)
    item = _items(res)["metric_ranges"]
    assert item.status == ck.FAILED
    assert "base/oe-001" in item.message and "cosine = 1.5 outside [-1, 1]" in item.message
    assert res.exit_code == 1


def test_self_baseline_below_cross_prompt_fails(run: Path) -> None:
    def flip(rec):
        if rec["system"] == "chat" and rec["bertscore_f1_to_ref_rescaled"] is not None:
            rec["bertscore_f1_to_ref_rescaled"] = -abs(rec["bertscore_f1_to_ref_rescaled"]) - 0.01
    _rewrite_jsonl(run / "metrics.jsonl", flip)
    item = _items(ck.check_run(run, replay=False))["self_baseline"]
    assert item.status == ck.FAILED and item.estimate is not None and item.estimate < 0


def test_samples_over_cap_and_missing_report_fail(run: Path) -> None:
    def over(rec):
        if rec["system"] == "chat" and rec["samples"]:
            rec["samples"][0]["n_tokens"] = rec["sampling"]["max_tokens"] + 1
    _rewrite_jsonl(run / "samples.jsonl", over)
    (run / "report.html").unlink()
    items = _items(ck.check_run(run, replay=False))
    assert items["samples"].status == ck.FAILED and "max_tokens" in items["samples"].message
    assert items["report"].status == ck.FAILED and "report.html" in items["report"].message


def test_finding_statuses() -> None:
    def f(verdict, ci=(0.1, 0.2), line="x. Verdict."):
        return {"name": "f", "verdict": verdict, "line": line, "ci": list(ci) if ci else None, "estimate": 0.1}

    def status(finding, **kw):
        return ck.finding_items({"claims": {"c": {"findings": [finding]}}}, enforced=False, strict=False, **kw)[0]

    assert status(f("supported")).status == ck.PASSED
    assert status(f("inconclusive", ci=(-0.1, 0.2))).status == ck.PASSED
    assert status(f("inconclusive", ci=None)).status == ck.SKIPPED  # nothing to judge
    assert status(f("inconclusive", line="x. Inconclusive: 54 % of base samples cut at max_tokens")).status == ck.SKIPPED
    assert status({**f("inconclusive"), "truncated": {"chat": 1.0}}).status == ck.SKIPPED
    assert status(f("not measured", ci=None)).status == ck.SKIPPED
    assert status(f("not supported")).status == ck.SKIPPED
    enforced = ck.finding_items({"claims": {"c": {"findings": [f("not supported")]}}}, enforced=True, strict=False)
    assert enforced[0].status == ck.FAILED and enforced[0].suite == "claims.c"


def test_ranges() -> None:
    assert metric_range("vendi", n=4) == (1.0, 4.0)
    assert metric_range("degenerate_rate") == (0.0, 1.0)
    assert out_of_range("cosine", 1.0 + 1e-9, -1, 1) is None
    assert out_of_range("cosine", float("nan"), -1, 1) == "cosine = nan is not finite"
    assert list(record_problems({"n": 4, "vendi": 4.5, "jaccard": 0.2, "stance": ["yes", "maybe"],
                                 "missing": [1, 6], "tokens_mean": 81.0}, max_tokens=80)) == [
        "vendi = 4.5 outside [1, 4]", "stance label 'maybe' not in ['yes', 'no', 'both', 'other']",
        "missing = 6 outside [1, 5]", "tokens_mean = 81 outside [0, 80]"]
    summary = {"systems": {"chat": {"jaccard": {"mean": 0.3, "ci": [0.4, 0.2]}}},
               "paired": {"chat - base": {"jaccard": {"mean": -0.5, "ci": [-0.6, -0.4]}}},
               "ratios": {"urial / chat": {"sets": {"all": {"cosine_to_ref": {"mean": 1.2, "ci": [0.9, 1.5]}}}}}}
    assert list(summary_problems(summary)) == ["systems/chat/jaccard: CI [0.4, 0.2] has its low end above its high end"]


def _parse_junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    total = {k: 0 for k in ("tests", "failures", "errors", "skipped")}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counts = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
                  "errors": sum(c.find("error") is not None for c in cases),
                  "skipped": sum(c.find("skipped") is not None for c in cases)}
        for key, value in counts.items():
            assert int(suite.get(key)) == value, (suite.get("name"), key)
            total[key] += value
        for case in cases:
            assert case.get("classname") == suite.get("name") and case.get("name")
            assert float(case.get("time")) >= 0
            assert sum(case.find(t) is not None for t in ("failure", "skipped")) <= 1
            for tag in ("failure", "skipped"):
                el = case.find(tag)
                if el is not None:
                    assert el.get("message")
    for key, value in total.items():
        assert int(root.get(key)) == value
    return root


def test_junit_and_markdown_match_the_result(run: Path, tmp_path: Path) -> None:
    res = ck.check_run(run, strict=True, open_chat=_fake_chat)
    root = _parse_junit(write_junit(res, tmp_path / "r.xml"))
    cases = {(s.get("name"), c.get("name")): c for s in root.findall("testsuite") for c in s.findall("testcase")}
    assert {n for (s, n) in cases if s == "overtonlite.pipeline"} == set(CHECKS)
    assert len(cases) == len(res.items)
    assert int(root.get("failures")) == sum(i.status == ck.FAILED for i in res.items) > 0
    for item in res.findings:
        case = cases[(f"overtonlite.{item.suite}", item.name)]
        assert case.findtext("system-out") == item.detail
        if item.status == ck.FAILED:
            failure = case.find("failure")
            assert failure.text == item.detail and "95% CI [" in failure.text
    md = write_summary_md(res, tmp_path / "s.md").read_text()
    assert md.splitlines()[0] == f"## overtonlite {res.status_line}"
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| check |")
            and not line.startswith("| claim |")]
    assert len(rows) == len(res.items)
    assert sum("**FAILED**" in r for r in rows) == sum(i.status == ck.FAILED for i in res.items)


def test_junit_read_by_junitparser(run: Path, tmp_path: Path) -> None:
    junitparser = pytest.importorskip("junitparser")
    res = ck.check_run(run, open_chat=_fake_chat)
    path = write_junit(res, tmp_path / "r.xml")
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [c for suite in xml for c in suite]
    assert len(cases) == len(res.items)
    assert sum(c.is_skipped for c in cases) == sum(i.status == ck.SKIPPED for i in res.items)
    assert sum(c.is_passed for c in cases) == sum(i.status == ck.PASSED for i in res.items)
    assert not any(c.is_failure for c in cases) and res.exit_code == 0


def test_xml_survives_control_characters(run: Path) -> None:
    res = ck.check_run(run, replay=False, report=False)
    res.items.append(ck.CheckItem("check", "odd", ck.FAILED, "text with \x00 and \x1b[31m escape"))
    ET.fromstring(junit_xml(res).split("\n", 1)[1])
    assert "odd" in summary_markdown(res)


# ---- the CLI: exit codes, the last line, the files ----

@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch):
    def open_pair(pair, **kwargs):
        if pair != "default":
            from overtonlite.errors import RegistryError

            raise RegistryError(f"unknown pair '{pair}'; known pairs: default")
        return fake_pair()

    monkeypatch.setattr(rep, "open_pair", open_pair)
    monkeypatch.setattr(ck, "open_model", lambda *a, **k: _fake_chat())
    monkeypatch.setattr("overtonlite.backends.onnx.open_default_embedder", lambda *a, **k: HashEmbedder())


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    from overtonlite.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


SMALL = ["--quick", "--limit", "4", "--n", "3", "--no-report"]


def test_cli_check_writes_junit_and_summary(fake_cli, tmp_path: Path, capsys) -> None:
    r, s = tmp_path / "r.xml", tmp_path / "s.md"
    code, out, err = _main(["check", *SMALL, "--out", str(tmp_path / "run"), "--junit-xml", str(r),
                            "--summary-md", str(s), "--json"], capsys)
    last = err.strip().splitlines()[-1]
    m = STATUS_LINE.match(last)
    assert m and m.group(1) == "check" and int(m.group(3)) == code
    root = _parse_junit(r)
    assert (int(root.get("failures")) > 0) == (code == 1)
    data = json.loads(out)
    assert data["exit_code"] == code and data["status"] == last
    assert s.read_text().startswith(f"## overtonlite {last}")
    # --strict: the fake pair misses directions, so it exits 1 and says why
    code, _, err = _main(["check", *SMALL, "--out", str(tmp_path / "run"), "--strict", "--no-replay",
                          "--junit-xml", str(r)], capsys)
    assert code == 1
    assert re.match(r"^check: \d+ claim findings? not supported \(exit 1\)$", err.strip().splitlines()[-1])
    assert int(_parse_junit(r).get("failures")) > 0


@pytest.mark.parametrize("args", [
    ["check", "--bogus"],
    ["check", "--pair", "nope", "--no-report"],
    ["check", "--junit-xml", "/nonexistent-dir/r.xml"],
    ["check", "--quick", "--limit", "0"],
])
def test_cli_check_usage_errors_exit_2(fake_cli, tmp_path: Path, capsys, args: list[str]) -> None:
    code, _, err = _main([*args, "--out", str(tmp_path / "run")], capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert lines[-1] == "check: usage or input error (exit 2)" and any("Error" in x for x in lines[:-1])
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_cli_replicate_assert(fake_cli, tmp_path: Path, capsys) -> None:
    r = tmp_path / "r.xml"
    code, _, err = _main(["replicate", *SMALL, "--out", str(tmp_path / "run"), "--assert", "--no-replay",
                          "--junit-xml", str(r)], capsys)
    assert STATUS_LINE.match(err.strip().splitlines()[-1]).group(1) == "replicate"
    assert code == 0  # cross-family, not strict: directions are reported only
    root = _parse_junit(r)
    assert int(root.get("failures")) == 0 and int(root.get("skipped")) > 0
    code, _, err = _main(["replicate", "--quick", "--junit-xml", str(r), "--out", str(tmp_path / "run2")], capsys)
    assert code == 2 and "need --assert" in err


@pytest.mark.realmodel
@pytest.mark.slow
def test_check_quick_real_models(default_base_path, default_chat_path, minilm_dir, tmp_path: Path, capsys) -> None:
    """The CI smoke test itself: `check --quick` on the default pair exits 0 when nothing is broken, with every
    pipeline check passed (the determinism replay on the real engine included) and the files CI reads."""
    r, s = tmp_path / "r.xml", tmp_path / "s.md"
    code, _, err = _main(["check", "--quick", "--out", str(tmp_path / "run"), "--junit-xml", str(r),
                          "--summary-md", str(s)], capsys)
    assert err.strip().splitlines()[-1] == "check: healthy (exit 0)" and code == 0, err[-3000:]
    root = _parse_junit(r)
    pipeline = {c.get("name"): c for c in root.find("testsuite[@name='overtonlite.pipeline']").findall("testcase")}
    assert set(pipeline) == set(CHECKS)
    assert all(c.find("failure") is None and c.find("skipped") is None for c in pipeline.values())
    assert int(root.get("failures")) == 0
    assert "| determinism | passed |" in s.read_text()
