"""``overtonlite score`` on the command line."""

from __future__ import annotations

import json

import pytest

from overtonlite.cli import main
from tests.test_scoring import HashEmbedder, write_responses


@pytest.fixture
def fake_embedder(monkeypatch):
    import overtonlite.backends.onnx as onnx_mod

    monkeypatch.setattr(onnx_mod, "open_default_embedder", lambda name=None, **kw: HashEmbedder())


def run(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_score_json(tmp_path, capsys, fake_embedder):
    src = write_responses(tmp_path / "r.jsonl")
    code, out, err = run(["score", str(src), "--out", str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"systems"}
    assert set(data["systems"]) == {"base", "chat"}
    assert set(data["systems"]["base"]["sets"]["all"]["jaccard"]) == {"mean", "ci", "n_prompts"}
    assert (tmp_path / "o" / "metrics.jsonl").is_file()


def test_score_table_with_reference(tmp_path, capsys, fake_embedder):
    src = write_responses(tmp_path / "r.jsonl", dict_samples=True)
    code, out, err = run(
        [
            "score",
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--reference-system",
            "chat",
            "--lowercase",
            "--no-stance",
            "--seed",
            "3",
        ],
        capsys,
    )
    assert code == 0, err
    # the tables (the command's result) go to stdout, notes and warnings to stderr
    for needle in ("Jaccard", "Vendi", "cos→ref", "base", "chat", "prompts"):
        assert needle in out
    assert "1 group(s) had generation errors" in err and "Jaccard" not in err
    # the fake embedder has no registry calibration: the default thresholds are used, and the user is told
    assert "has no calibration in the registry" in " ".join(err.split())
    settings = json.loads((tmp_path / "o" / "summary.json").read_text())["settings"]
    assert settings["lowercase"] is True and settings["seed"] == 3 and settings["reference_system"] == "chat"


def test_run_directory_input(tmp_path, capsys, fake_embedder):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rec = {
        "system": "m",
        "prompt_id": "a",
        "prompt": "Name a fruit.",
        "error": None,
        "samples": [
            {"text": "Apple.", "n_tokens": 2, "finish_reason": "stop"},
            {"text": "A pear", "n_tokens": 2, "finish_reason": "length"},
        ],
    }
    (run_dir / "samples.jsonl").write_text(json.dumps(rec) + "\n")
    code, out, err = run(["score", str(run_dir), "--out", str(run_dir), "--json"], capsys)
    assert code == 0, err
    (m,) = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert m["tokens_mean"] == 2 and m["truncation_rate"] == 0.5


def test_malformed_file_one_line_error(tmp_path, capsys, fake_embedder):
    src = tmp_path / "bad.jsonl"
    src.write_text(
        '{"system": "a", "prompt_id": 1, "samples": ["ok"]}\n{"system": "a", "prompt_id": 2, "samp\n'
    )
    code, out, err = run(["score", str(src), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "bad.jsonl:2:" in lines[0]


def test_unknown_reference_system_exit_2(tmp_path, capsys, fake_embedder):
    src = write_responses(tmp_path / "r.jsonl")
    code, _, err = run(["score", str(src), "--out", str(tmp_path / "o"), "--reference-system", "zzz"], capsys)
    assert code == 2 and "zzz" in err


@pytest.mark.realmodel
def test_score_cli_real_embedder(tmp_path, capsys, minilm_dir):
    src = write_responses(tmp_path / "r.jsonl")
    code, out, err = run(
        ["score", str(src), "--out", str(tmp_path / "o"), "--json", "--reference-system", "chat"], capsys
    )
    assert code == 0, err
    chat = json.loads(out)["systems"]["chat"]["sets"]["all"]
    base = json.loads(out)["systems"]["base"]["sets"]["all"]
    assert chat["cosine"]["mean"] > base["cosine"]["mean"]
    assert -1 <= chat["bertscore_f1_to_ref_rescaled"]["mean"] <= 1
    settings = json.loads((tmp_path / "o" / "summary.json").read_text())["settings"]
    assert settings["calibration"] == "embedder all-minilm-l6-v2"
    assert "has no calibration" not in err
