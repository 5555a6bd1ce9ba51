"""Verdicts from existing generations: ``overtonlite replicate --from FILE_OR_DIR --role base=NAME --role chat=NAME``.

Any JSONL in the input format of ``overtonlite score`` (:mod:`overtonlite.scoring.inputs`; a run directory means its
``samples.jsonl``) holds groups of samples per (system, prompt). Roles map its system names onto the systems the
claims compare:

* ``base`` (required) and ``chat`` (required, the reference whose sample 0 coverage and similarity are measured
  against) become the systems ``base`` and ``chat``;
* ``urial`` (optional) becomes ``urial``: the third system of claim 1 and the plain in-context baseline of claim 2;
* ``hinted`` (optional, repeatable) keeps its own name and is an in-context condition *with a hint* for the
  recoverability claim (the best of them is judged, as the best ``+summary`` condition of a generated run).

The selected groups are copied, renamed, into ``OUT/samples.jsonl`` (each keeps its original name under
``source_system``, and its prompt text), scored with ``chat`` as the reference, and judged exactly as a generated
run; nothing is generated and no generator is opened, only the sentence embedder. A finding whose prompt set is
absent from the input (stance without contested prompts; recoverability without an ICL condition) is
"not measured" and the claim verdict rests on the findings that were measured
(:mod:`overtonlite.experiments.verdicts`). Prompts count as contested when their group says ``"set": "contested"``,
or when every prompt of the input is a yes/no question; other groups without a set join ``open-ended``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overtonlite.errors import UsageError
from overtonlite.experiments.common import (
    BASE,
    CHAT,
    URIAL,
    PairInfo,
    ensure_writable,
    write_results,
)
from overtonlite.experiments.truncation import run_shares

ROLE_NAMES = (BASE, CHAT, URIAL, "hinted")
SOURCE_KEY = "from_generations"
"""``results.json["settings"]`` key that marks a directory written by :func:`replicate_from`."""


@dataclass(frozen=True)
class Roles:
    """Which input system plays which role."""

    base: str
    chat: str
    urial: str | None = None
    hinted: tuple[str, ...] = ()

    def mapping(self) -> dict[str, str]:
        """``{input system: system name in the run}``."""
        out = {self.base: BASE, self.chat: CHAT}
        if self.urial:
            out[self.urial] = URIAL
        out.update({h: h for h in self.hinted})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "chat": self.chat, "urial": self.urial, "hinted": list(self.hinted)}


def parse_roles(specs: Sequence[str] | Mapping[str, Any]) -> Roles:
    """Roles from ``["base=NAME", "chat=NAME", "hinted=NAME", ...]`` (or a mapping); UsageError when malformed."""
    pairs: list[tuple[str, str]] = []
    if isinstance(specs, Mapping):
        for role, names in specs.items():
            for name in [names] if isinstance(names, str) else list(names or ()):
                pairs.append((str(role), str(name)))
    else:
        for spec in specs:
            role, sep, name = str(spec).partition("=")
            if not sep or not role.strip() or not name.strip():
                raise UsageError(f"--role {spec!r}: expected ROLE=SYSTEM, e.g. base=llama-2-base")
            pairs.append((role.strip(), name.strip()))
    got: dict[str, list[str]] = {r: [] for r in ROLE_NAMES}
    for role, name in pairs:
        if role not in got:
            raise UsageError(f"--role {role}={name}: unknown role {role!r}; roles: {', '.join(ROLE_NAMES)}")
        if role != "hinted" and got[role]:
            raise UsageError(f"--role {role} given twice ({got[role][0]}, {name}); only 'hinted' repeats")
        got[role].append(name)
    for role in (BASE, CHAT):
        if not got[role]:
            raise UsageError(f"--from needs --role {role}=SYSTEM (the input's {role} system)")
    names = [n for r in ROLE_NAMES for n in got[r]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"system {dup[0]!r} is given more than one role")
    clash = [h for h in got["hinted"] if h in (BASE, CHAT, URIAL)]
    if clash:
        raise UsageError(
            f"a hinted system cannot be named {clash[0]!r} (a role name); rename it in the input"
        )
    return Roles(got[BASE][0], got[CHAT][0], (got[URIAL] or [None])[0], tuple(got["hinted"]))


@dataclass
class GenerationsInfo(PairInfo):
    """The "pair" of a run built from existing generations: the input's base and chat system names."""

    source: str = ""

    @property
    def banner(self) -> str | None:
        if self.same_family:
            return None
        return (
            f"overtonlite did not generate '{self.base}' and '{self.chat}' and does not know whether they come "
            "from one pretrained model; unless they do (say so with --same-family), every base-vs-chat "
            "difference may mix the effect of alignment with the effect of a different model"
        )


def _select(
    records: list[dict[str, Any]],
    roles: Roles,
    path: Path,
    *,
    limit: int | None,
    prompt_ids: Sequence[str] | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    systems = list(dict.fromkeys(str(r["system"]) for r in records))
    for role, name in (
        ("base", roles.base),
        ("chat", roles.chat),
        ("urial", roles.urial),
        *(("hinted", h) for h in roles.hinted),
    ):
        if name is not None and name not in systems:
            raise UsageError(
                f"--role {role}={name}: no system {name!r} in {path} (systems: {', '.join(systems)})"
            )
    ids = list(dict.fromkeys(str(r["prompt_id"]) for r in records if r["system"] == roles.chat))
    if prompt_ids is not None:
        wanted = {str(p) for p in prompt_ids}
        ids = [i for i in ids if i in wanted]
    if limit is not None:
        if limit < 1:
            raise UsageError(f"--limit must be >= 1, got {limit}")
        # the first K prompts of each prompt set, as for sampling (a mixed file keeps its contested prompts)
        set_of = {str(r["prompt_id"]): r.get("set") for r in records if r["system"] == roles.chat}
        taken: dict[Any, int] = {}
        kept_ids = []
        for i in ids:
            taken[set_of.get(i)] = taken.get(set_of.get(i), 0) + 1
            if taken[set_of.get(i)] <= limit:
                kept_ids.append(i)
        ids = kept_ids
    if not ids:
        raise UsageError(
            f"no prompt of {path} is left to judge (chat system {roles.chat!r}, limit/subset applied)"
        )
    keep = set(ids)
    mapping = roles.mapping()
    out = [r for r in records if r["system"] in mapping and str(r["prompt_id"]) in keep]
    return out, ids


def _write_samples(
    out: Path,
    records: list[dict[str, Any]],
    roles: Roles,
    prompts: Mapping[tuple[str, str], Any],
    *,
    contested: bool,
) -> Path:
    """The selected groups under their run names; groups without a set join ``contested`` when ``contested``
    (every prompt is a yes/no question), else ``open-ended``."""
    mapping = roles.mapping()
    out.mkdir(parents=True, exist_ok=True)  # created only once the input and the roles have been checked
    path = out / "samples.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            row = dict(rec)
            row["source_system"] = rec["system"]
            row["system"] = mapping[rec["system"]]
            prompt = prompts.get((rec["system"], str(rec["prompt_id"])))
            if row.get("prompt") is None and prompt is not None:
                row["prompt"] = prompt
            if not row.get("set"):
                row["set"] = "contested" if contested else "open-ended"
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _check_out(out: Path) -> None:
    """Refuse to overwrite samples that ``replicate --from`` did not write (a generated run, say)."""
    path = out / "samples.jsonl"
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    try:
        ours = "source_system" in json.loads(first)
    except (ValueError, TypeError):
        ours = False
    if not ours:
        raise UsageError(
            f"{out} already holds a samples.jsonl that replicate --from did not write; "
            "choose a new --out directory"
        )


def replicate_from(
    source: str | Path,
    *,
    roles: Roles | Sequence[str] | Mapping[str, Any],
    out: str | Path,
    embedder: Any = None,
    seed: int = 0,
    limit: int | None = None,
    prompt_ids: Sequence[str] | None = None,
    same_family: bool = False,
    report: bool = True,
) -> Any:
    """Metrics, both claims' verdicts, results.json and the report from existing generations (module docstring).

    ``limit`` keeps the first K prompts of the chat system (file order), ``prompt_ids`` a subset. ``embedder``: an
    Embedder, a registry embedder name or None for the default. Returns a
    :class:`~overtonlite.experiments.replicate.ReplicateResult`. Raises UsageError for bad roles or an unusable
    ``out``, DataError for a malformed input.
    """
    from overtonlite.experiments.replicate import ReplicateResult, _build_report, claim_pairs, compute_claims
    from overtonlite.rundir.manifest import portable_path
    from overtonlite.rundir.records import read_groups
    from overtonlite.scoring import score_input, should_score_stance
    from overtonlite.scoring.inputs import read_input
    from overtonlite.util import sha256_file

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    role = roles if isinstance(roles, Roles) else parse_roles(roles)
    path, groups = read_input(source)
    outdir = ensure_writable(out)
    if outdir.resolve() == path.parent.resolve() and path.name == "samples.jsonl":
        raise UsageError(
            "--out must differ from the --from run directory (its samples.jsonl would be replaced)"
        )
    _check_out(outdir)
    selected, ids = _select(read_groups(path), role, path, limit=limit, prompt_ids=prompt_ids)
    prompts = {(g.system, g.pid): g.prompt for g in groups}
    kept = {(str(r["system"]), str(r["prompt_id"])) for r in selected}
    yes_no = should_score_stance([g for g in groups if (g.system, g.pid) in kept and g.error is None])
    _write_samples(outdir, selected, role, prompts, contested=yes_no)
    for stale in ("metrics.jsonl", "summary.json", "results.json"):
        (outdir / stale).unlink(missing_ok=True)
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    conditions = [c for c in (URIAL if role.urial else None, *role.hinted) if c]
    present = set(role.mapping().values())
    pairs = [p for p in claim_pairs(conditions) if p[0] in present and p[1] in present]
    scored = score_input(
        outdir, out=outdir, reference_system=CHAT, stance=None, embedder=embedder, seed=seed, pairs=pairs
    )
    timings["score"] = time.perf_counter() - t
    claims = compute_claims(outdir, conditions=conditions, hinted=list(role.hinted))
    pair = GenerationsInfo(
        name=f"from:{path.name}",
        base=role.base,
        chat=role.chat,
        same_family=same_family,
        source=portable_path(path),
    )
    settings = {
        SOURCE_KEY: {
            "input": portable_path(path),
            "input_sha256": sha256_file(path),
            "roles": role.to_dict(),
        },
        "prompts": {"selected": len(ids)},
        "seed": seed,
        "conditions": conditions,
        "hinted": list(role.hinted),
        "reference_system": CHAT,
        "embedder": (scored.settings.get("embedder") or {}).get("name"),
        "stance_scored": scored.settings.get("stance_scored"),
    }
    timings["total_before_report"] = time.perf_counter() - t0
    results = write_results(
        outdir,
        pair=pair,
        settings=settings,
        claims=claims,
        extra={"timings": {k: round(v, 1) for k, v in timings.items()}, "truncation": run_shares(outdir)},
    )
    paths = None
    if report:
        t = time.perf_counter()
        paths = _build_report(outdir)
        timings["report"] = time.perf_counter() - t
    return ReplicateResult(
        out=outdir, results=results, report=paths, seconds=time.perf_counter() - t0, timings=timings
    )


__all__ = ["GenerationsInfo", "Roles", "parse_roles", "replicate_from"]
