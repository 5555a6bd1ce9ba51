"""``overtonlite check``: a CI smoke test. Is the pipeline healthy, and which way do the claims point?

:func:`check` runs ``replicate`` and then :func:`check_run` on its run directory; ``replicate --assert`` calls
:func:`check_run` too. The result is a list of test items, each ``passed``, ``failed`` or ``skipped``:

Pipeline checks (a failure means something is broken, whatever the models):

* ``samples``: every group has its N samples; every sample has a known finish reason and at most ``max_tokens``
  tokens.
* ``metric_ranges``: every value in metrics.jsonl lies in its range (:mod:`overtonlite.experiments.check_ranges`).
* ``summary_ranges``: every mean and CI in summary.json lies in its range, and no CI is reversed.
* ``results``: results.json holds both claims, every finding has a verdict and a line, and no CI is reversed.
* ``self_baseline``: the aligned self-baseline is above the cross-prompt baseline: the chat model's resamples
  are closer to its sample 0 than answers to other prompts are to each other (mean rescaled BERTScore-style F1
  of chat s1..s(N-1) vs s0 above 0).
* ``determinism``: the chat system's groups are generated again, with the same requests in the same order, a
  fresh model instance and the same seed, and every text must be identical to the stored one. (The engine
  reproduces a batch exactly, not a group run in another batch composition, so a whole call is replayed.)
* ``report``: report.md and report.html exist, are not older than results.json, and the markdown states every
  claim's verdict (skipped with ``--no-report``).

Claim findings: one item per finding of results.json, read through its ``name``, ``verdict`` and ``line``.
``supported`` and ``inconclusive`` pass. ``not supported`` (the expected direction fails beyond its CI) fails
when the directions are enforced (a same-family pair, or ``strict``), and is otherwise skipped with the reason
(reported, not enforced: on a cross-family pair family and alignment are confounded). Skipped too: "not
measured" and inconclusive by design (no CI to judge, or too many samples cut at max_tokens).

Exit code: 0 when nothing failed, 1 when a check or an enforced finding failed (2, usage errors, is raised as
UsageError before anything runs).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from overtonlite import schema
from overtonlite.errors import RegistryError
from overtonlite.experiments import evidence as ev
from overtonlite.experiments.check_ranges import TOL, record_problems, summary_problems
from overtonlite.experiments.common import CHAT, open_model, read_results
from overtonlite.experiments.verdicts import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, fmt, fmt_ci
from overtonlite.rundir.manifest import recorded_engine, recorded_schedule

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
NOT_MEASURED = "not measured"
FINISH_REASONS = ("stop", "eos", "length")
CLAIMS = ("overton", "recoverability")
CHECK_FILE = "check.json"
MAX_LISTED = 5


@dataclass(frozen=True)
class CheckItem:
    """One test: a pipeline check (``kind="check"``) or a claim finding (``kind="finding"``)."""

    kind: str
    name: str
    status: str
    message: str
    detail: str = ""
    seconds: float = 0.0
    suite: str = "pipeline"
    verdict: str | None = None
    estimate: float | None = None
    ci: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "suite": self.suite,
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
            "verdict": self.verdict,
            "estimate": self.estimate,
            "ci": list(self.ci) if self.ci else None,
        }


@dataclass
class CheckResult:
    """All items of one check, the pair, and whether claim directions were enforced."""

    out: Path
    items: list[CheckItem]
    pair: dict[str, Any] = field(default_factory=dict)
    enforced: bool = False
    strict: bool = False
    command: str = "check"
    seconds: float = 0.0
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def checks(self) -> list[CheckItem]:
        return [i for i in self.items if i.kind == "check"]

    @property
    def findings(self) -> list[CheckItem]:
        return [i for i in self.items if i.kind == "finding"]

    @property
    def exit_code(self) -> int:
        return 1 if any(i.status == FAILED for i in self.items) else 0

    @property
    def status_line(self) -> str:
        """The last line a CI log shows: what happened and the exit code."""
        bad_checks = sum(i.status == FAILED for i in self.checks)
        bad_findings = sum(i.status == FAILED for i in self.findings)
        parts = []
        if bad_checks:
            parts.append(f"{bad_checks} check{'s' if bad_checks != 1 else ''} failed")
        if bad_findings:
            parts.append(f"{bad_findings} claim finding{'s' if bad_findings != 1 else ''} not supported")
        return f"{self.command}: {', '.join(parts) or 'healthy'} (exit {self.exit_code})"

    @property
    def enforcement(self) -> str:
        if self.strict:
            return "claim directions enforced (--strict)"
        if self.enforced:
            return "claim directions enforced (same-family pair)"
        return "claim directions reported, not enforced (cross-family pair; --strict enforces them)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "status": self.status_line,
            "pair": self.pair,
            "enforced": self.enforced,
            "strict": self.strict,
            "enforcement": self.enforcement,
            "seconds": round(self.seconds, 1),
            "items": [i.to_dict() for i in self.items],
        }


def _listed(problems: list[str], total_what: str) -> tuple[str, str]:
    head = f"{len(problems)} {total_what}: " + "; ".join(problems[:MAX_LISTED])
    if len(problems) > MAX_LISTED:
        head += f"; and {len(problems) - MAX_LISTED} more"
    return head, "\n".join(problems)


def _timed(fn: Callable[..., CheckItem], *args: Any, **kw: Any) -> CheckItem:
    t0 = time.perf_counter()
    try:
        item = fn(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check, reported with its reason
        name = fn.__name__.removeprefix("check_")
        item = CheckItem("check", name, FAILED, f"the check itself failed: {type(exc).__name__}: {exc}")
    return replace(item, seconds=time.perf_counter() - t0)


def check_samples(run_dir: Path) -> CheckItem:
    if not (run_dir / "samples.jsonl").is_file():
        return CheckItem("check", "samples", SKIPPED, "no samples.jsonl in the run directory")
    groups = ev.read_samples(run_dir)
    if not groups:
        return CheckItem("check", "samples", FAILED, f"no groups in {run_dir / 'samples.jsonl'}")
    problems: list[str] = []
    n_samples = errors = 0
    for g in groups:
        where = f"{g.get('system')}/{g.get('prompt_id')}"
        if g.get("error"):
            errors += 1
            continue
        samples = g.get("samples") or []
        n_samples += len(samples)
        if isinstance(g.get("n"), int) and len(samples) != g["n"]:
            problems.append(f"{where}: {len(samples)} samples, expected {g.get('n')}")
        cap = (g.get("sampling") or {}).get("max_tokens")
        for i, s in enumerate(samples):
            if not isinstance(s, dict):
                continue  # imported generations may be bare texts
            reason = s.get("finish_reason")
            if (
                reason is not None and reason not in FINISH_REASONS
            ):  # absent: not recorded (imported generations)
                problems.append(f"{where} sample {i}: finish_reason {reason!r}")
            tokens = s.get("n_tokens")
            if isinstance(cap, int) and isinstance(tokens, int) and not 0 <= tokens <= cap:
                problems.append(f"{where} sample {i}: {tokens} tokens, max_tokens {cap}")
    if problems:
        return CheckItem("check", "samples", FAILED, *_listed(problems, "problems in samples.jsonl"))
    extra = f" ({errors} groups recorded as errors, e.g. prompt too long)" if errors else ""
    return CheckItem(
        "check",
        "samples",
        PASSED,
        f"{len(groups) - errors} groups, {n_samples} samples: counts, finish reasons and token caps "
        f"consistent{extra}",
    )


def check_metric_ranges(run_dir: Path, settings: dict[str, Any]) -> CheckItem:
    records = schema.read_metrics(run_dir)
    if not records:
        return CheckItem("check", "metric_ranges", FAILED, f"no records in {run_dir / 'metrics.jsonl'}")
    cap = settings.get("max_tokens") if isinstance(settings.get("max_tokens"), int) else None
    problems = [
        f"line {i} ({r.get('system')}/{r.get('prompt_id')}): {p}"
        for i, r in enumerate(records, 1)
        for p in record_problems(r, max_tokens=cap)
    ]
    if problems:
        return CheckItem(
            "check", "metric_ranges", FAILED, *_listed(problems, "values out of range in metrics.jsonl")
        )
    values = sum(len(v) if isinstance(v, list) else 1 for r in records for v in r.values() if v is not None)
    return CheckItem(
        "check",
        "metric_ranges",
        PASSED,
        f"{len(records)} records, {values} values in range (Jaccard, shares in [0, 1], cosines in "
        f"[-1, 1], Vendi in [1, N], missing-information proxy in [1, 5], tolerance {TOL:g})",
    )


def check_summary_ranges(run_dir: Path, settings: dict[str, Any]) -> CheckItem:
    data = schema.read_summary(run_dir)
    if not data:
        return CheckItem("check", "summary_ranges", FAILED, f"no {run_dir / 'summary.json'}")
    n = settings.get("n") if isinstance(settings.get("n"), int) else None
    cap = settings.get("max_tokens") if isinstance(settings.get("max_tokens"), int) else None
    problems = list(summary_problems(data, n=n, max_tokens=cap))
    if problems:
        return CheckItem("check", "summary_ranges", FAILED, *_listed(problems, "problems in summary.json"))
    count = sum(1 for _ in _entries(data))
    return CheckItem(
        "check", "summary_ranges", PASSED, f"{count} means with 95% CIs in range, no CI reversed"
    )


def _entries(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        if "mean" in node and "ci" in node:
            yield node
            return
        for key, child in node.items():
            if key != "settings":
                yield from _entries(child)


def check_results(results: dict[str, Any]) -> CheckItem:
    claims = results.get("claims") or {}
    problems = [f"claim '{c}' missing" for c in CLAIMS if c not in claims]
    n = 0
    for cname, claim in claims.items():
        findings = claim.get("findings") or []
        if not findings:
            problems.append(f"{cname}: no findings")
        for f in findings:
            n += 1
            if not f.get("name") or not isinstance(f.get("line"), str) or not f.get("verdict"):
                problems.append(f"{cname}: a finding without name, line or verdict: {f!r}"[:200])
            ci = f.get("ci")
            if (
                isinstance(ci, list)
                and len(ci) == 2
                and all(isinstance(c, int | float) for c in ci)
                and ci[0] > ci[1] + TOL
            ):
                problems.append(f"{cname}.{f.get('name')}: CI {ci} reversed")
    if problems:
        return CheckItem("check", "results", FAILED, *_listed(problems, "problems in results.json"))
    return CheckItem(
        "check", "results", PASSED, f"{len(claims)} claims, {n} findings, each with a verdict and a line"
    )


def check_self_baseline(run_dir: Path, seed: int = 0) -> CheckItem:
    """The stored chat self-similarity (summary.json, set ``all``: rescaled BERTScore-style F1 of chat s1..s(N-1)
    against s0, where 0 is the cross-prompt baseline) must lie above 0, its whole 95% CI when it has one."""
    del seed  # the CI is the stored one; nothing is recomputed here
    entry = schema.summary_stat(
        schema.read_summary(run_dir), CHAT, schema.ALL, "bertscore_f1_to_ref_rescaled"
    )
    mean = entry.get("mean") if entry else None
    if not isinstance(mean, int | float):
        return CheckItem(
            "check",
            "self_baseline",
            FAILED,
            "no chat self-similarity (rescaled BERTScore-style F1 of chat s1..s(N-1) vs s0) in summary.json",
        )
    ci = entry.get("ci") if isinstance(entry.get("ci"), list) and len(entry["ci"]) == 2 else None
    above = (ci[0] > 0) if ci is not None else mean > 0
    text = (
        f"chat self-similarity, rescaled against the cross-prompt baseline: {fmt(mean)} ({fmt_ci(ci)}) "
        f"over {entry.get('n_prompts')} prompts (summary.json); expected above 0"
        + ("" if ci is not None else ", judged on the mean: one prompt, no CI")
    )
    return CheckItem("check", "self_baseline", PASSED if above else FAILED, text, estimate=float(mean), ci=ci)


def check_report(run_dir: Path, results: dict[str, Any], *, expected: bool) -> CheckItem:
    if not expected:
        return CheckItem("check", "report", SKIPPED, "report not built (--no-report)")
    md, html = run_dir / "report.md", run_dir / "report.html"
    missing = [p.name for p in (md, html) if not p.is_file() or p.stat().st_size == 0]
    if missing:
        return CheckItem("check", "report", FAILED, f"missing or empty: {', '.join(missing)}")
    problems = []
    res = run_dir / "results.json"
    if res.is_file() and min(md.stat().st_mtime, html.stat().st_mtime) + 1.0 < res.stat().st_mtime:
        problems.append("the report is older than results.json")
    text = md.read_text(encoding="utf-8", errors="replace").lower()
    for cname, claim in (results.get("claims") or {}).items():
        if cname not in text or str(claim.get("verdict", "")).lower() not in text:
            problems.append(
                f"report.md does not state claim '{cname}' and its verdict '{claim.get('verdict')}'"
            )
    if "<html" not in html.read_text(encoding="utf-8", errors="replace")[:2000].lower():
        problems.append("report.html is not an HTML document")
    if problems:
        return CheckItem("check", "report", FAILED, *_listed(problems, "problems in the report"))
    return CheckItem(
        "check",
        "report",
        PASSED,
        f"report.md ({md.stat().st_size:,} bytes) and report.html "
        f"({html.stat().st_size:,} bytes) built, every claim's verdict stated",
    )


def check_determinism(
    run_dir: Path,
    results: dict[str, Any],
    *,
    open_chat: Callable[[], Any] | None,
    progress: Callable[[Any], None] | None = None,
) -> CheckItem:
    from overtonlite.config import SamplingConfig
    from overtonlite.datasets import load_prompts
    from overtonlite.sampling import sample_run

    if open_chat is None:
        return CheckItem("check", "determinism", SKIPPED, "not replayed (--no-replay)")
    settings = results.get("settings") or {}
    sizes = settings.get("prompts") or {}
    stored = {
        g.get("key"): g for g in ev.read_samples(run_dir) if g.get("system") == CHAT and not g.get("error")
    }
    if (
        not stored
        or not isinstance(sizes.get("open-ended"), int)
        or not isinstance(sizes.get("contested"), int)
    ):
        return CheckItem(
            "check",
            "determinism",
            SKIPPED,
            "nothing to replay: this run has no generated chat groups of the replicate presets",
        )
    chat_model = (results.get("pair") or {}).get("chat")
    made_by = {g.get("model") for g in stored.values()}
    if made_by != {chat_model} or not all(g.get("model_sha256") for g in stored.values()):
        return CheckItem(
            "check",
            "determinism",
            SKIPPED,
            f"nothing to replay: the chat groups were not generated by the pair's chat model "
            f"{chat_model!r} (generated by {sorted(map(str, made_by))}; imported generations?)",
        )
    prompts = [
        *load_prompts("builtin:open-ended", limit=sizes["open-ended"]),
        *load_prompts("builtin:contested", limit=sizes["contested"]),
    ]
    try:
        gen = open_chat()
    except RegistryError as exc:
        return CheckItem("check", "determinism", SKIPPED, f"nothing to replay with: {exc}")
    tmp = Path(tempfile.mkdtemp(prefix="overtonlite-replay-"))
    try:
        sample_run(
            gen,
            prompts,
            out=tmp,
            system=CHAT,
            n=int(settings["n"]),
            sampling=SamplingConfig(max_tokens=int(settings["max_tokens"])),
            seed=int(settings["seed"]),
            mode="chat",
            progress=progress,
        )
        again = [g for g in ev.read_samples(tmp) if not g.get("error")]
    finally:
        gen.close()
        shutil.rmtree(tmp, ignore_errors=True)
    problems: list[str] = []
    texts = same = 0
    for g in again:
        old = stored.get(g.get("key"))
        if old is None:
            problems.append(f"{g.get('prompt_id')}: no stored chat group with the same settings (key)")
            continue
        for i, (a, b) in enumerate(zip(old.get("samples") or [], g.get("samples") or [], strict=False)):
            texts += 1
            if a.get("text") == b.get("text"):
                same += 1
            else:
                problems.append(
                    f"{g.get('prompt_id')} sample {i} differs: stored {a.get('text', '')[:60]!r}, "
                    f"again {b.get('text', '')[:60]!r}"
                )
    if not again:
        problems.append("the replay produced no groups")
    if problems:
        msg, detail = _listed(problems, f"differences ({same}/{texts} texts identical)")
        hint = (
            " (the stored groups must come from one uninterrupted run with these settings: a resumed run or "
            "an earlier run with other --limit in the same --out gives other batches; retry with a fresh --out)"
        )
        return CheckItem("check", "determinism", FAILED, msg + hint, detail)
    return CheckItem(
        "check",
        "determinism",
        PASSED,
        f"{len(again)} chat groups generated again with seed {settings['seed']}: {same}/{texts} texts "
        "identical",
    )


def _finding_item(cname: str, f: dict[str, Any], enforced: bool, strict: bool) -> CheckItem:
    verdict = str(f.get("verdict"))
    line = str(f.get("line") or f.get("statement") or "")
    ci = f.get("ci")
    ci_t = (
        (float(ci[0]), float(ci[1]))
        if isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(c, int | float) for c in ci)
        else None
    )
    est = f.get("estimate") if isinstance(f.get("estimate"), int | float) else None
    if verdict == SUPPORTED:
        status, msg = PASSED, line
    elif verdict == NOT_SUPPORTED:
        if enforced or strict:
            status, msg = FAILED, line
        else:
            status, msg = SKIPPED, f"not enforced on a cross-family pair (--strict enforces it): {line}"
    elif verdict == NOT_MEASURED:
        status, msg = SKIPPED, f"not measured: {line}"
    elif verdict == INCONCLUSIVE and (ci_t is None or f.get("truncated") or "cut at max_tokens" in line):
        status, msg = SKIPPED, f"inconclusive by design: {line}"
    elif verdict == INCONCLUSIVE:
        status, msg = PASSED, line
    else:
        status, msg = SKIPPED, f"unknown verdict {verdict!r}: {line}"
    return CheckItem(
        "finding",
        str(f.get("name")),
        status,
        msg,
        line,
        suite=f"claims.{cname}",
        verdict=verdict,
        estimate=est,
        ci=ci_t,
    )


def finding_items(results: dict[str, Any], *, enforced: bool, strict: bool) -> list[CheckItem]:
    """One item per finding of every claim (see the module docstring for the statuses)."""
    return [
        _finding_item(cname, f, enforced, strict)
        for cname, claim in (results.get("claims") or {}).items()
        for f in claim.get("findings") or []
    ]


def check_run(
    run_dir: str | Path,
    *,
    strict: bool = False,
    replay: bool = True,
    report: bool = True,
    open_chat: Callable[[], Any] | None = None,
    registry: Any = None,
    threads: int | None = None,
    command: str = "check",
    progress: Callable[[Any], None] | None = None,
) -> CheckResult:
    """Check a replicate run directory (module docstring) and write ``check.json`` into it.

    ``open_chat`` opens a fresh chat generator for the determinism replay (default: the registry model named in
    results.json); ``replay=False`` skips the replay; ``report=False`` skips the report check.
    """
    from overtonlite.util import write_json_atomic

    t0 = time.perf_counter()
    path = Path(run_dir)
    results = read_results(path)
    settings = results.get("settings") or {}
    pair = results.get("pair") or {}
    if replay and open_chat is None and pair.get("chat"):

        def open_chat() -> Any:
            # sized as replicate sized it (max_tokens, and the sequence budget and KV layout the chat system
            # recorded), so the engine settings match
            max_seqs, kv_layout = recorded_engine(path, CHAT)
            return open_model(
                str(pair["chat"]),
                registry=registry,
                threads=threads,
                max_tokens=settings.get("max_tokens"),
                max_seqs=max_seqs,
                kv_layout=kv_layout,
                schedule=recorded_schedule(path, CHAT),
            )

    items = [
        _timed(check_samples, path),
        _timed(check_metric_ranges, path, settings),
        _timed(check_summary_ranges, path, settings),
        _timed(check_results, results),
        _timed(check_self_baseline, path, int(settings.get("seed", 0))),
        _timed(check_determinism, path, results, open_chat=open_chat if replay else None, progress=progress),
        _timed(check_report, path, results, expected=report),
    ]
    enforced = bool(pair.get("same_family"))
    items += finding_items(results, enforced=enforced, strict=strict)
    res = CheckResult(
        out=path,
        items=items,
        pair=pair,
        enforced=enforced,
        strict=strict,
        command=command,
        seconds=time.perf_counter() - t0,
        results=results,
    )
    write_json_atomic(path / CHECK_FILE, res.to_dict())
    return res


def check(
    pair: str | Any = "default",
    *,
    out: str | Path,
    strict: bool = False,
    replay: bool = True,
    report: bool = True,
    open_chat: Callable[[], Any] | None = None,
    progress: Callable[[Any], None] | None = None,
    **replicate_kw: Any,
) -> CheckResult:
    """``replicate`` (same keyword arguments) on ``out``, then :func:`check_run` on it."""
    from overtonlite.experiments.replicate import replicate

    t0 = time.perf_counter()
    res = replicate(pair, out=out, report=report, progress=progress, **replicate_kw)
    result = check_run(
        res.out,
        strict=strict,
        replay=replay,
        report=report,
        open_chat=open_chat,
        registry=replicate_kw.get("registry"),
        threads=replicate_kw.get("threads"),
        progress=progress,
    )
    result.seconds = time.perf_counter() - t0
    return result
