"""``overtonlite sweep`` with fake generators and a hashing embedder: systems, resume, summary, report, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from overtonlite.backends.fake import FakeGenerator
from overtonlite.cli import cli
from overtonlite.errors import UsageError
from overtonlite.experiments.sweep import params_count, plan_systems, settings_for, sweep, temperature_label
from tests.exp_fakes import HashEmbedder

MODELS = ("gemma-3-270m", "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct")


def _generators() -> dict[str, FakeGenerator]:
    return {
        "gemma-3-270m": FakeGenerator(
            "gemma-3-270m", chat_template=False, model_sha256="a" * 64, mean_words=12
        ),
        "smollm2-135m-instruct": FakeGenerator("smollm2-135m-instruct", model_sha256="b" * 64, mean_words=20),
        "qwen2.5-coder-0.5b-instruct": FakeGenerator(
            "qwen2.5-coder-0.5b-instruct", model_sha256="c" * 64, mean_words=20
        ),
    }


def test_plan_names_and_sizes() -> None:
    systems, infos = plan_systems(["default", "gemma-coder"], [0.5, 1.0], [48])
    assert [s.name for s in systems] == [
        "base@T0.5",
        "base@T1.0",
        "chat:smollm2-135m-instruct@T0.5",
        "chat:smollm2-135m-instruct@T1.0",
        "chat:qwen2.5-coder-0.5b-instruct@T0.5",
        "chat:qwen2.5-coder-0.5b-instruct@T1.0",
    ]
    assert [s.params_count for s in systems[::2]] == [270e6, 135e6, 0.5e9]
    assert len(infos) == 2
    many, _ = plan_systems(["default"], [0.3], [64, 128])
    assert [s.name for s in many] == [
        "base@T0.3/M64",
        "base@T0.3/M128",
        "chat:smollm2-135m-instruct@T0.3/M64",
        "chat:smollm2-135m-instruct@T0.3/M128",
    ]
    assert params_count("1.5B") == 1.5e9 and params_count("big") is None
    assert temperature_label(1) == "1.0" and temperature_label(0.25) == "0.25"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"temperatures": "a,b"}, "--temperatures"),
        ({"temperatures": "0.5,0.5"}, "repeated"),
        ({"temperatures": "-1"}, ">= 0"),
        ({"max_tokens": "0"}, "--max-tokens"),
        ({"n": 1}, "--n must be >= 2"),
        ({"limit": 0}, "--limit"),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    base = {
        "quick": True,
        "pairs": None,
        "temperatures": None,
        "max_tokens": None,
        "n": None,
        "limit": None,
        "seed": 0,
    }
    with pytest.raises(UsageError, match=message):
        settings_for(**(base | kwargs))


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["sweep", "--quick", "--out", str(tmp_path / "o"), "--temperatures", "hot"])
    assert res.exit_code == 2
    assert "--temperatures" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["sweep", "--quick", "--out", str(tmp_path / "o"), "--pairs", "nope"])
    assert res.exit_code != 0 and "unknown pair 'nope'" in res.output


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, dict[str, FakeGenerator]]:
    out = tmp_path_factory.mktemp("sweep") / "run"
    gens = _generators()
    res = sweep(out=out, quick=True, generators=gens, embedder=HashEmbedder())
    return out, res, gens


def test_sweep_writes_summary_with_new_metrics_and_matrix(swept) -> None:
    out, res, _ = swept
    summary = json.loads((out / "summary.json").read_text())
    names = [r["name"] for r in res.table]
    assert len(names) == 6 and set(names) <= set(summary["systems"])
    for name in names:
        for key in (
            "distinct_at_n",
            "distinct_at_n_filtered",
            "homogenization_rougel",
            "compression_ratio",
            "ngram_diversity",
            "self_repetition",
        ):
            assert key in summary["systems"][name]["sets"]["open-ended"], (name, key)
    sim = summary["similarity"]["sets"]
    assert set(sim) == {"open-ended", "contested"}
    entry = sim["open-ended"]
    assert entry["systems"] == names
    assert len(entry["matrix"]) == 6 and all(len(r) == 6 for r in entry["matrix"])
    assert all(entry["n_prompts"][i][j] == 4 for i in range(6) for j in range(6))
    # the table is read from summary.json, not recomputed
    row = res.table[0]
    stored = summary["systems"][row["name"]]["sets"]
    assert row["distinct_at_n"]["mean"] == stored["open-ended"]["distinct_at_n"]["mean"]
    assert row["distinct_at_n"]["set"] == "open-ended" and row["stance_both_share"]["set"] == "contested"
    assert row["stance_both_share"]["mean"] == stored["contested"]["stance_both_share"]["mean"]
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["sweep"]["systems"]] == names
    assert "confounded" in results["banner"]


def test_report_has_sweep_plots_and_table(swept) -> None:
    out, res, _ = swept
    page = (out / "report.html").read_text()
    for ident in (
        "plot-sweep-temperature",
        "plot-sweep-size",
        "plot-sweep-heatmap",
        "plot-sweep-histograms",
        "sweep-table",
    ):
        assert f'id="{ident}"' in page, ident
    md = (out / "report.md").read_text()
    assert "## Sweep: temperature and model size" in md
    assert "chat:qwen2.5-coder-0.5b-instruct@T1.0" in md


def test_rerun_resumes_and_only_samples_new_settings(swept) -> None:
    out, _, gens = swept
    before = {m: g.stats["groups"] for m, g in gens.items()}
    again = sweep(out=out, quick=True, generators=gens, embedder=HashEmbedder(), report=False)
    assert {m: g.stats["groups"] for m, g in gens.items()} == before  # everything was already sampled
    more = sweep(
        out=out,
        quick=True,
        temperatures="0.5,1.0,1.5",
        generators=gens,
        embedder=HashEmbedder(),
        report=False,
    )
    added = {m: g.stats["groups"] - before[m] for m, g in gens.items()}
    assert added == {m: 6 for m in MODELS}  # one new temperature x (4 + 2) prompts per model
    assert len(more.table) == 9 and len(again.table) == 6


def test_cli_json_prints_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import overtonlite.experiments.sweep as mod

    real = mod.sweep

    def fake_sweep(*args, **kwargs):
        return real(*args, **kwargs, generators=_generators(), embedder=HashEmbedder())

    monkeypatch.setattr(mod, "sweep", fake_sweep)
    res = CliRunner().invoke(
        cli, ["sweep", "--quick", "--limit", "2", "--no-report", "--out", str(tmp_path / "o"), "--json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 6 and rows[0]["name"] == "base@T0.5" and "distinct_at_n" in rows[0]


@pytest.mark.realmodel
@pytest.mark.slow
def test_sweep_real_models_small(default_base_path, default_chat_path, minilm_dir, tmp_path: Path) -> None:
    """The three offline models through the real engine and embedder, at a fraction of the quick preset."""
    res = CliRunner().invoke(
        cli,
        [
            "sweep",
            "--quick",
            "--limit",
            "1",
            "--n",
            "2",
            "--max-tokens",
            "16",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows][:2] == ["base@T0.5", "base@T1.0"] and len(rows) == 6
    summary = json.loads((tmp_path / "summary.json").read_text())
    for row in rows:
        assert 1.0 <= row["distinct_at_n"]["mean"] <= 2.0  # N = 2: one or two classes per prompt
        assert row["compression_ratio"]["mean"] > 0
    entry = summary["similarity"]["sets"]["open-ended"]
    assert len(entry["matrix"]) == 6
    page = (tmp_path / "report.html").read_text()
    assert 'id="plot-sweep-heatmap"' in page and 'id="plot-sweep-temperature"' in page


def test_reuse_copies_matching_groups_from_a_diversity_run(tmp_path: Path) -> None:
    from overtonlite.config import SamplingConfig
    from overtonlite.datasets import load_prompts
    from overtonlite.experiments.diversity import generate_diversity
    from overtonlite.rundir.records import read_groups

    gens = _generators()
    prompts = [*load_prompts("builtin:open-ended", limit=2), *load_prompts("builtin:contested", limit=2)]
    generate_diversity(
        gens["gemma-3-270m"],
        gens["smollm2-135m-instruct"],
        prompts,
        out=tmp_path / "div",
        n=4,
        sampling=SamplingConfig(max_tokens=48),
        seed=0,
        systems=("base", "chat"),
    )
    before = {m: g.stats["groups"] for m, g in gens.items()}
    res = sweep(
        out=tmp_path / "sw",
        quick=True,
        limit=2,
        pairs="default",
        reuse=[tmp_path / "div"],
        generators=gens,
        embedder=HashEmbedder(),
        report=False,
    )
    added = {m: g.stats["groups"] - before[m] for m, g in gens.items()}
    # T 0.5 of both models came from the diversity run; only T 1.0 was generated
    assert added["gemma-3-270m"] == 4 and added["smollm2-135m-instruct"] == 4
    assert res.results["sweep"]["reused_groups"] == {"gemma-3-270m": 4, "smollm2-135m-instruct": 4}
    groups = read_groups(tmp_path / "sw" / "samples.jsonl")
    reused = [g for g in groups if g.get("reused_from")]
    assert {g["system"] for g in reused} == {"base@T0.5", "chat:smollm2-135m-instruct@T0.5"}
    src = {(g["system"], g["prompt_id"]): g for g in read_groups(tmp_path / "div" / "samples.jsonl")}
    for g in reused:
        assert (
            g["samples"]
            == src[("base" if g["system"].startswith("base") else "chat", g["prompt_id"])]["samples"]
        )
    with pytest.raises(UsageError, match="no samples.jsonl"):
        sweep(
            out=tmp_path / "sw2",
            quick=True,
            limit=1,
            pairs="default",
            reuse=[tmp_path / "nothing"],
            generators=_generators(),
            embedder=HashEmbedder(),
            report=False,
        )


def test_kv_layout_reaches_every_model_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sweep --kv-layout opens each local model with that layout (one model at a time)."""
    import overtonlite.experiments.sweep as mod

    fakes = _generators()
    seen: dict[str, object] = {}

    def open_model(name, **kwargs):
        seen[name] = kwargs.get("kv_layout")
        return fakes[name]

    monkeypatch.setattr(mod, "open_model", open_model)
    monkeypatch.setattr("overtonlite.backends.open_embedder", lambda *a, **k: HashEmbedder())
    res = CliRunner().invoke(
        cli,
        [
            "sweep",
            "--quick",
            "--limit",
            "2",
            "--no-report",
            "--out",
            str(tmp_path / "o"),
            "--json",
            "--kv-layout",
            "streams",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    assert seen == dict.fromkeys(MODELS, "streams")
