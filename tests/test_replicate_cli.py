"""`replicate` / `check` / `diversity` / `icl` end to end: fast with fakes, and one real-model smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overtonlite.experiments import replicate as rep
from overtonlite.experiments.verdicts import VERDICTS
from tests.exp_fakes import HashEmbedder, fake_pair


def _check_results(data: dict) -> None:
    assert set(data["pair"]) >= {"base", "chat", "same_family"}
    assert set(data["settings"]) >= {"prompts", "n", "max_tokens", "seed"}
    for name in ("overton", "recoverability"):
        claim = data["claims"][name]
        assert claim["verdict"] in VERDICTS
        assert claim["lines"] and all(isinstance(x, str) for x in claim["lines"])
        assert isinstance(claim["evidence"], list) and claim["evidence"]
        for entry in claim["evidence"]:
            assert set(entry) == {"system", "set", "metric", "kind", "mean", "ci", "n_prompts"}
        for finding in claim["findings"]:
            assert finding["systems"] and finding["set"]
    assert isinstance(data["signature"], str) and data["signature"].startswith("overtonlite ")


def test_replicate_end_to_end_with_fakes(tmp_path: Path) -> None:
    res = rep.replicate(out=tmp_path, quick=True, models=fake_pair(), embedder=HashEmbedder(), report=False)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data == res.results
    _check_results(data)
    assert data["pair"]["same_family"] is False
    assert data["banner"].startswith("family and alignment are confounded")
    assert data["settings"]["prompts"] == {"open-ended": 6, "contested": 6}
    assert data["settings"]["n"] == rep.QUICK.n and data["settings"]["max_tokens"] == rep.QUICK.max_tokens
    over = data["claims"]["overton"]["evidence"]
    assert {"jaccard", "words_mean"} <= {e["metric"] for e in over}
    assert {e["system"] for e in over if e["metric"] == "jaccard" and e["kind"] == "mean"} == {
        "base",
        "chat",
        "urial",
    }
    rec = data["claims"]["recoverability"]["evidence"]
    shares = {e["system"] for e in rec if e["kind"] == "ratio" and e["metric"] == "cosine_to_ref"}
    assert shares == {f"{c} / chat" for c in rep.QUICK.conditions}
    # the report module rebuilds the claims from stored metrics identically
    again = rep.recompute_results(tmp_path)
    assert again is not None and again["claims"] == data["claims"]


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch):
    """Make the CLI open the fake pair and the hashing embedder instead of real models."""
    state = {"base_template": False, "chat_template": True}

    def open_pair(pair, **kwargs):
        if pair != "default":
            from overtonlite.errors import RegistryError

            raise RegistryError(f"unknown pair '{pair}'; known pairs: default")
        m = fake_pair(base_template=state["base_template"], chat_template=state["chat_template"])
        from overtonlite.experiments.common import check_pair

        check_pair(m.base, m.chat, base_name=m.info.base, chat_name=m.info.chat)
        return m

    monkeypatch.setattr(rep, "open_pair", open_pair)
    monkeypatch.setattr("overtonlite.backends.onnx.open_default_embedder", lambda *a, **k: HashEmbedder())
    return state


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from overtonlite.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as exc:  # main() returns normally on success and exits otherwise
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_json_prints_checks_and_exit_code(fake_cli, tmp_path: Path, capsys) -> None:
    code, out, err = _main(
        ["check", "--quick", "--out", str(tmp_path / "run"), "--json", "--no-report", "--no-replay"], capsys
    )
    data = json.loads(out)
    assert {i["suite"] for i in data["items"]} == {"pipeline", "claims.overton", "claims.recoverability"}
    expected = 1 if any(i["status"] == "failed" for i in data["items"]) else 0
    assert code == data["exit_code"] == expected
    assert err.strip().splitlines()[-1] == data["status"]


def test_replicate_cli_writes_results(fake_cli, tmp_path: Path, capsys) -> None:
    code, out, err = _main(
        ["replicate", "--quick", "--out", str(tmp_path), "--json", "--no-report", "--n", "3"], capsys
    )
    assert code == 0
    data = json.loads(out)
    _check_results(data)
    assert data["settings"]["n"] == 3


def test_replicate_cli_rich_output_has_banner_and_verdicts(fake_cli, tmp_path: Path, capsys) -> None:
    code, out, err = _main(["replicate", "--quick", "--out", str(tmp_path), "--no-report"], capsys)
    assert code == 0
    # the banner is a warning (stderr); the findings tables and verdict lines are the result (stdout)
    assert "family and alignment are confounded" in " ".join(err.split())
    flat = " ".join(out.split())
    assert "claim: overton" in flat and "claim: recoverability" in flat
    assert "95% CI [" in flat
    assert "family and alignment" not in flat


@pytest.mark.parametrize(
    ("args", "state"),
    [
        (["replicate", "--quick", "--pair", "nope"], {}),
        (["replicate", "--quick"], {"chat_template": False}),
        (["replicate", "--quick"], {"base_template": True}),
        (["replicate", "--quick", "--limit", "3"], {}),  # kNN with k=3 needs more than 3 prompts
        (["icl", "--conditions", "urial,knn+gist", "--limit", "5"], {}),
    ],
)
def test_bad_input_exit_2(fake_cli, tmp_path: Path, capsys, args: list[str], state: dict) -> None:
    from overtonlite.cli import main

    fake_cli.update(state)
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ")


def test_unwritable_out_exit_2(fake_cli, tmp_path: Path, capsys) -> None:
    from overtonlite.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["replicate", "--quick", "--out", str(blocker / "run")])
    assert exc.value.code == 2
    assert "cannot write to the output directory" in capsys.readouterr().err


def test_diversity_and_icl_commands_share_a_run_dir(fake_cli, tmp_path: Path, capsys) -> None:
    code, _, _ = _main(
        [
            "diversity",
            "--limit",
            "4",
            "--n",
            "2",
            "--max-tokens",
            "32",
            "--out",
            str(tmp_path),
            "--no-report",
        ],
        capsys,
    )
    assert code == 0
    code, _, _ = _main(
        [
            "icl",
            "--limit",
            "5",
            "--n",
            "2",
            "--max-tokens",
            "32",
            "--conditions",
            "urial,knn+keywords",
            "--out",
            str(tmp_path),
            "--no-report",
        ],
        capsys,
    )
    assert code == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["claims"]) == {"overton", "recoverability"}
    assert set(data["settings"]["prompts"]) == {"builtin:open-ended", "builtin:contested"}
    assert data["settings"]["icl_prompt_ids"] == [f"oe-{i:03d}" for i in range(1, 6)]
    again = rep.recompute_results(tmp_path)
    assert again is not None and again["claims"] == data["claims"]


@pytest.mark.realmodel
@pytest.mark.slow
def test_replicate_quick_real_models(
    default_base_path, default_chat_path, minilm_dir, tmp_path: Path, capsys
) -> None:
    """The CI smoke test: `replicate --quick` on the default pair, end to end (its time is measured by
    benchmarks/bench_replicate.py, not here)."""
    code, _, err = _main(["replicate", "--quick", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "results.json").read_text())
    _check_results(data)
    assert data["banner"]  # the default pair is cross-family
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.html").is_file()


def test_kv_layout_reaches_both_models_and_a_resume_keeps_it(
    fake_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    """replicate --kv-layout opens the pair with that layout; without the option, a run directory whose systems
    were sampled with streams is resumed with streams (the layout decides the texts), and `--from` refuses it."""
    seen: list[object] = []
    opener = rep.open_pair

    def open_pair(pair, **kwargs):
        seen.append(kwargs.get("kv_layout"))
        return opener(pair, **kwargs)

    monkeypatch.setattr(rep, "open_pair", open_pair)
    args = ["replicate", "--quick", "--json", "--no-report", "--n", "2", "--max-tokens", "16"]
    code, _, _ = _main([*args, "--out", str(tmp_path / "a"), "--kv-layout", "streams"], capsys)
    assert code == 0 and seen == ["streams"]
    code, _, _ = _main([*args, "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and seen[-1] is None
    # the fakes record no engine settings: mark run b's systems as sampled with streams, as llama.cpp would
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    for entry in manifest["systems"].values():
        entry["engine"] = {"max_seqs": 8, "kv_layout": "streams"}
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _main([*args, "--out", str(tmp_path / "b")], capsys)
    assert seen[-1] == "streams"
    # the fakes, which have no engine, then differ from that record: refused, not mixed into the run
    assert code == 2 and "kv_layout" in err
    code, _, err = _main(["replicate", "--from", str(tmp_path / "a"), "--kv-layout", "streams", "--out",
                          str(tmp_path / "c")], capsys)  # fmt: skip
    assert code == 2 and "--kv-layout only apply to sampling" in " ".join(err.split())
