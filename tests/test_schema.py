"""The run files' schema: one number per finding (evidence == summary.json), per-set summaries, the per-prompt value
function, pandas loading, and reading files of the previous layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from overtonlite import schema
from overtonlite.experiments import replicate as rep
from tests.exp_fakes import HashEmbedder, fake_pair


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`replicate --quick` end to end with the fake pair and the hashing embedder (no report)."""
    out = tmp_path_factory.mktemp("quick")
    rep.replicate(out=out, quick=True, models=fake_pair(), embedder=HashEmbedder(), report=False)
    return out


def test_every_evidence_entry_equals_its_summary_entry(quick_run: Path) -> None:
    summary = json.loads((quick_run / "summary.json").read_text())
    results = json.loads((quick_run / "results.json").read_text())
    assert summary["schema_version"] == results["schema_version"] == schema.SCHEMA_VERSION
    n_entries = 0
    for claim in results["claims"].values():
        for entry in claim["evidence"]:
            assert set(entry) == set(schema.EVIDENCE_KEYS)
            section = {"mean": "systems", "paired": "paired", "ratio": "ratios"}[entry["kind"]]
            stored = summary[section][entry["system"]]["sets"][entry["set"]][entry["metric"]]
            assert {k: entry[k] for k in ("mean", "ci", "n_prompts")} == stored
            n_entries += 1
        # each finding names its systems and set, and its estimate is the summary.json entry it names
        for f in claim["findings"]:
            assert f["systems"] and f["set"] in summary["sets"]
            if f["estimate"] is None:
                continue
            a, b = f["systems"][0], f["systems"][1]
            if f["kind"] == "paired":
                stored = summary["paired"][f"{a} - {b}"]["sets"][f["set"]][f["metric"]]
            elif f["kind"] == "ratio":
                stored = summary["ratios"][f"{a} / {b}"]["sets"][f["set"]][f["metric"]]
            else:
                stored = summary["systems"][a]["sets"][f["set"]][f["metric"]]
            assert (f["estimate"], f["ci"], f["n_prompts"]) == (
                stored["mean"],
                stored["ci"],
                stored["n_prompts"],
            )
    assert n_entries > 20
    # one bootstrap resample count for every CI
    assert summary["settings"]["n_boot"] == results["settings"]["n_boot"] == schema.N_BOOT


def test_stance_covers_the_contested_prompts_only(quick_run: Path) -> None:
    summary = json.loads((quick_run / "summary.json").read_text())
    n_contested = rep.QUICK.contested
    assert summary["sets"]["contested"]["prompts"] == n_contested
    assert summary["settings"]["stance_sets"] == ["contested"]
    for system in ("base", "chat", "urial"):
        sets = summary["systems"][system]["sets"]
        for name in ("open-ended", "all"):
            assert not [m for m in sets[name] if schema.is_stance_metric(m)], (system, name)
        assert sets["contested"]["stance_both_share"]["n_prompts"] == n_contested
        assert sets["contested"]["yes_no_split"]["n_prompts"] == n_contested
    # no open-ended answer got a stance label
    for rec in schema.read_metrics(quick_run):
        if rec["set"] == "open-ended":
            assert rec["stance"] is None and rec["stance_both_share"] is None, rec["prompt_id"]
        else:
            assert rec["set"] == "contested" and isinstance(rec["stance"], list)


def test_claims_are_rebuilt_identically_from_summary(quick_run: Path) -> None:
    before = json.loads((quick_run / "results.json").read_text())["claims"]
    again = rep.recompute_results(quick_run)
    assert again is not None and again["claims"] == before


def test_jsonl_files_load_with_pandas(quick_run: Path) -> None:
    pd = pytest.importorskip("pandas")
    samples = pd.read_json(quick_run / "samples.jsonl", lines=True)
    metrics = pd.read_json(quick_run / "metrics.jsonl", lines=True)
    assert set(schema.GROUP_KEYS) <= set(samples.columns)
    assert set(schema.METRIC_KEYS) <= set(metrics.columns)
    assert len(metrics) == len(schema.read_metrics(quick_run))
    assert (samples["schema_version"] == schema.SCHEMA_VERSION).all()


def test_per_prompt_value() -> None:
    v = schema.per_prompt_value
    assert v(0.25) == 0.25 and v(3) == 3.0
    assert v(True) == 1.0 and v(False) == 0.0
    assert v([1, 2, None, 3]) == 2.0
    assert v([True, False, False, True]) == 0.5
    assert v([0.5, True]) == 0.75
    assert v(["yes", "no"]) is None and v([]) is None and v([None]) is None
    assert v(None) is None and v(float("nan")) is None and v("0.3") is None
    assert v([float("nan"), 1.0]) == 1.0


def test_group_record_keys() -> None:
    rec = schema.group_record(system="s", prompt_id="p", samples=[])
    assert list(rec) == list(schema.GROUP_KEYS)
    assert rec["schema_version"] == schema.SCHEMA_VERSION and rec["error"] is None
    with pytest.raises(TypeError, match="bogus"):
        schema.group_record(system="s", bogus=1)


def test_previous_summary_layout_is_read_as_the_all_set(tmp_path: Path) -> None:
    old = {
        "systems": {"chat": {"jaccard": {"mean": 0.3, "ci": [0.2, 0.4], "n": 5}}},
        "paired": {"base - chat": {"jaccard": {"mean": -0.1, "ci": [-0.2, 0.0], "n": 5}}},
        "settings": {"seed": 0},
    }
    (tmp_path / "summary.json").write_text(json.dumps(old))
    data = schema.read_summary(tmp_path)
    assert data is not None and data["schema_version"] == 1
    assert schema.summary_stat(data, "chat", "all", "jaccard") == {
        "mean": 0.3,
        "ci": [0.2, 0.4],
        "n_prompts": 5,
    }
    assert schema.paired_stat(data, "base", "chat", "all", "jaccard")["mean"] == -0.1
    assert schema.set_names(data) == ["all"]


def test_writers_are_atomic_and_ordered(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    written = schema.write_results(path, {"claims": {}, "extra": 1, "pair": None})
    assert list(written)[:4] == ["schema_version", "pair", "settings", "claims"]
    assert json.loads(path.read_text()) == written
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind
    schema.write_metrics(
        tmp_path / "metrics.jsonl", [{"system": "a", "prompt_id": "1", "jaccard": 0.5, "x": 2}]
    )
    (rec,) = schema.read_metrics(tmp_path)
    assert list(rec)[: len(schema.METRIC_KEYS)] == list(schema.METRIC_KEYS) and rec["x"] == 2
    assert math.isclose(rec["jaccard"], 0.5)


def test_judge_values_as_the_judge_writes_them_reach_summary_json() -> None:
    """The judge stores its yes/no split as a bool per group and its counts as ints: the split is summarised (on
    the stance set only), the error count is not a metric."""
    from overtonlite.scoring.agg import build_summary

    recs = []
    for i, split in enumerate((True, False, True, True)):
        recs.append(
            {
                "system": "base",
                "prompt_id": f"c{i}",
                "set": "contested",
                "stance": ["yes", "no"],
                "yes_no_split": split,
                "yes_no_split_judge": split,
                "stance_judge_both_share": 0.5,
                "missing_judge_mean": None,
                "judge_errors": 1,
            }
        )
        recs.append(
            {
                "system": "base",
                "prompt_id": f"o{i}",
                "set": "open-ended",
                "stance": None,
                "missing_judge_mean": 2.0 + i,
                "missing_judge_le2_share": 0.5,
                "judge_errors": 0,
            }
        )
    summary = build_summary(recs, systems=["base"], reference_system=None, seed=0)
    sets = summary["systems"]["base"]["sets"]
    assert sets["contested"]["yes_no_split_judge"]["mean"] == pytest.approx(0.75)
    assert sets["contested"]["yes_no_split_judge"]["n_prompts"] == 4
    assert "yes_no_split_judge" not in sets["open-ended"]
    assert sets["open-ended"]["missing_judge_mean"]["mean"] == pytest.approx(3.5)
    assert all("judge_errors" not in metrics for metrics in sets.values())
