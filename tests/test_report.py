"""Report tests on synthetic run directories written here (the JSON files follow the run-dir schemas)."""

from __future__ import annotations

import base64
import json
import random
import re
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from overtonlite.cli import cli
from overtonlite.errors import DataError
from overtonlite.report import build_report, load_run
from overtonlite.scoring.agg import build_summary

BASE, CHAT, URIAL = "gemma-3-270m", "smollm2-135m-instruct", "gemma-3-270m+urial"
ICL = ("icl-fixed", "icl-knn+summary")
SIGNATURE = (
    "overtonlite 0.1.0 | gemma-3-270m,smollm2-135m-instruct | n=5 T=0.5 rp=1.1 max=48 seed=0 | sha:abcd1234"
)
BANNER = "Cross-family pair: family and alignment are confounded in every comparison below."
OPEN = [f"oe-{i:03d}" for i in range(1, 5)]
CONTESTED = [f"cq-{i:03d}" for i in range(1, 4)]
# per-system centre values: (words, jaccard, cosine, vendi, cos_to_ref, f1_to_ref, jac_to_ref)
PROFILE = {
    BASE: (31.0, 0.08, 0.41, 3.9, 0.42, 0.80, 0.06),
    CHAT: (142.0, 0.27, 0.78, 1.8, 0.81, 0.89, 0.25),
    URIAL: (88.0, 0.15, 0.55, 2.9, 0.61, 0.85, 0.14),
    ICL[0]: (95.0, 0.17, 0.60, 2.6, 0.66, 0.86, 0.17),
    ICL[1]: (120.0, 0.22, 0.70, 2.2, 0.77, 0.88, 0.22),
}
STANCES = {
    BASE: ["yes", "no", "yes", "other", "no"],
    CHAT: ["both", "both", "both", "yes", "both"],
    URIAL: ["both", "yes", "both", "no", "both"],
}


SCORING = {
    "embedder": {"name": "all-minilm-l6-v2", "dim": 384, "sha256": "8199be6f699a395f" + "0" * 48},
    "lexical_tokenizer": "nltk-treebank, stopwords removed, case kept",
    "tau": 0.62,
}
PAIRED = {
    f"{BASE} - {CHAT}": {"jaccard": {"mean": -0.19, "ci": [-0.21, -0.17], "n": 7}, "cosine": {"mean": None}},
    f"{URIAL} - {CHAT}": {"jaccard": {"mean": -0.12, "ci": [-0.15, -0.09], "n": 7}},
}


def _record(system: str, prompt_id: str, rng: random.Random) -> dict[str, Any]:
    words, jac, cos, vendi, cref, fref, jref = (v * rng.uniform(0.9, 1.1) for v in PROFILE[system])
    contested = prompt_id.startswith("cq")
    stance = STANCES.get(system) if contested else None
    coverage = (
        [round(rng.uniform(0.3, 0.95), 3) for _ in range(5)]
        if system in (BASE, URIAL) and not contested
        else None
    )
    return {
        "system": system,
        "prompt_id": prompt_id,
        "set": "contested" if contested else "open-ended",
        "n": 5,
        "jaccard": jac,
        "cosine": cos,
        "vendi": vendi,
        "words_mean": words,
        "tokens_mean": words * 1.3,
        "words": [round(words)] * 5,
        "relevance": [0.5] * 5,
        "stance": stance,
        "coverage": coverage,
        "missing": [rng.choice([1, 2, 2, 3, 4]) for _ in range(5)] if coverage else None,
        "stance_both_share": (stance.count("both") / 5) if stance else None,
        **(
            {f"stance_{k}_share": stance.count(k) / 5 for k in ("yes", "no", "both", "other")}
            if stance
            else {}
        ),
        "yes_no_split": (1.0 if "yes" in stance and "no" in stance else 0.0) if stance else None,
        "quality_pass": [True, True, False, True, rng.random() > 0.5],
        "jaccard_filtered": jac * 1.2,
        "cosine_filtered": cos * 1.05,
        "cosine_to_ref": cref,
        "bertscore_f1_to_ref": fref,
        "jaccard_to_ref": jref,
    }


def _stat(values: list[float]) -> dict[str, Any]:
    mean = sum(values) / len(values)
    return {"mean": mean, "ci": [mean * 0.9, mean * 1.1], "n": len(values)}


def _ev(
    system: str, set_name: str, metric: str, mean: float, ci: list[float], n: int, kind: str = "mean"
) -> dict:
    return {
        "system": system,
        "set": set_name,
        "metric": metric,
        "kind": kind,
        "mean": mean,
        "ci": ci,
        "n_prompts": n,
    }


EVIDENCE = [
    _ev(BASE, "open-ended", "jaccard", 0.081, [0.07, 0.09], 4),
    _ev(CHAT, "open-ended", "jaccard", 0.271, [0.25, 0.29], 4),
]
OLD_EVIDENCE = {
    "jaccard": {BASE: {"mean": 0.081, "ci": [0.07, 0.09]}, CHAT: {"mean": 0.271, "ci": [0.25, 0.29]}}
}


def write_summary(path: Path, metrics: list[dict[str, Any]], *, old_layout: bool = False) -> None:
    """summary.json of synthetic metrics records: built by the scoring aggregation (records get the set of their
    prompt id, stance counts as scored where a record has labels), or in the layout before schema version 2."""
    if old_layout:
        out: dict[str, Any] = {}
        for s in dict.fromkeys(r["system"] for r in metrics):
            recs = [r for r in metrics if r["system"] == s]
            out[s] = {}
            for key in ("jaccard", "cosine", "vendi", "words_mean", "cosine_to_ref", "stance_both_share"):
                vals = [r[key] for r in recs if r.get(key) is not None]
                if vals:
                    out[s][key] = _stat(vals)
        data = {"systems": out, "paired": PAIRED, "settings": SCORING}
    else:
        recs = [
            {
                **r,
                "set": r.get("set")
                or (
                    "contested"
                    if str(r["prompt_id"]).startswith("cq")
                    else "open-ended"
                    if str(r["prompt_id"]).startswith("oe")
                    else None
                ),
            }
            for r in metrics
        ]
        systems = list(dict.fromkeys(r["system"] for r in recs))
        ref = CHAT if CHAT in systems else ("chat" if "chat" in systems else None)
        blocks = build_summary(recs, systems=systems, reference_system=ref, seed=0)
        stance_sets = ["contested"] if any(r.get("stance") for r in recs) else []
        data = {**blocks, "settings": {**SCORING, "stance_sets": stance_sets, "n_boot": 2000}, "errors": []}
        data = {"schema_version": 2, **data}
    (path / "summary.json").write_text(json.dumps(data))


def write_run(
    path: Path,
    *,
    results: bool = True,
    summary: bool = True,
    manifest: bool = True,
    samples: bool = True,
    banner: str | None = BANNER,
    systems: tuple[str, ...] = (BASE, CHAT, URIAL, *ICL),
    old_layout: bool = False,
) -> Path:
    """A complete synthetic replicate run directory (``old_layout``: summary.json and the evidence of
    results.json as written before schema version 2)."""
    rng = random.Random(0)
    path.mkdir(parents=True, exist_ok=True)
    metrics = [_record(s, p, rng) for s in systems for p in OPEN + CONTESTED]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    if summary:
        write_summary(path, metrics, old_layout=old_layout)
    if manifest:
        (path / "manifest.json").write_text(
            json.dumps(
                {
                    "overtonlite_version": "0.1.0",
                    "created": "2026-11-27T10:00:00Z",
                    "git_revision": None,
                    "python": "3.11.7",
                    "packages": {"llama_cpp_python": "0.3.36", "onnxruntime": "1.20.1"},
                    "systems": {
                        s: {
                            "model": CHAT if s == CHAT else BASE,
                            "model_sha256": ("b179c952" if s == CHAT else "a5fd3b62") + "0" * 56,
                            "config": {
                                "temperature": 0.5,
                                "repetition_penalty": 1.1,
                                "top_p": 1.0,
                                "top_k": 0,
                                "min_p": 0.0,
                                "max_tokens": 48,
                            },
                            "seed": 0,
                            "n": 5,
                            "backend": {"n_ctx": 2048},
                        }
                        for s in systems
                    },
                    "signature": SIGNATURE,
                }
            )
        )
    if samples:
        lines = []
        for s in systems:
            for p in OPEN + CONTESTED:
                overflow = s == ICL[1] and p == OPEN[0]
                samples_ = (
                    []
                    if overflow
                    else [
                        {
                            "text": "x",
                            "n_tokens": 48 if i == 0 else 20,
                            "finish_reason": "length" if i == 0 else "stop",
                            "seed": i,
                            "max_tokens": 48,
                        }
                        for i in range(5)
                    ]
                )
                lines.append(
                    {
                        "system": s,
                        "prompt_id": p,
                        "error": "prompt_too_long" if overflow else None,
                        "samples": samples_,
                    }
                )
        (path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if results:
        (path / "results.json").write_text(
            json.dumps(
                {
                    "pair": {"base": BASE, "chat": CHAT, "same_family": False},
                    "settings": {
                        "prompts": {"open-ended": 4, "contested": 3},
                        "n": 5,
                        "max_tokens": 48,
                        "seed": 0,
                        "quick": True,
                        "embedder": "all-minilm-l6-v2",
                        "tokenizer": "nltk-treebank-lower",
                    },
                    "claims": {
                        "overton": {
                            "verdict": "supported",
                            "evidence": OLD_EVIDENCE if old_layout else EVIDENCE,
                            "lines": [
                                "Lexical similarity rises from base 0.081 [0.070, 0.090] to chat 0.271 "
                                "[0.250, 0.290]"
                            ],
                        },
                        "recoverability": {
                            "verdict": "inconclusive",
                            "evidence": {"share_cosine": {ICL[1]: {"mean": 0.951, "ci": [0.90, 1.01]}}}
                            if old_layout
                            else [
                                _ev(
                                    f"{ICL[1]} / {CHAT}",
                                    "open-ended",
                                    "cosine_to_ref",
                                    0.951,
                                    [0.90, 1.01],
                                    4,
                                    "ratio",
                                )
                            ],
                            "lines": [
                                "icl-knn+summary reaches 95.1% [90.0%, 101.0%] of the aligned self-similarity"
                            ],
                        },
                    },
                    "signature": SIGNATURE,
                    "banner": banner,
                }
            )
        )
    return path


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "img":
            self.imgs.append(a)
        for key in ("src", "href"):
            value = a.get(key) or ""
            if key in a and not value.startswith("data:"):
                self.external.append(f"{tag} {key}={value}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(path: Path) -> _Collector:
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


def test_markdown_has_verdicts_banner_settings_and_numbers(run_dir: Path) -> None:
    paths = build_report(run_dir, plots=False)
    md = paths.md.read_text()
    assert md.startswith("# overtonlite report: gemma-3-270m (base) vs smollm2-135m-instruct (chat)")
    assert f"> [!WARNING]\n> {BANNER}" in md
    assert "**overton**: supported" in md and "**recoverability**: inconclusive" in md
    assert "- Lexical similarity rises from base 0.081 [0.070, 0.090] to chat 0.271 [0.250, 0.290]" in md
    # evidence tables: one row per entry, with its set and number of prompts
    assert (
        "| evidence | system | set | prompts | mean [95% CI] |\n|---|---|---|---|---|\n"
        f"| jaccard | {BASE} | open-ended | 4 | 0.081 [0.070, 0.090] |\n"
        f"| jaccard | {CHAT} | open-ended | 4 | 0.271 [0.250, 0.290] |"
    ) in md
    assert f"| cosine_to_ref | {ICL[1]} / {CHAT} | open-ended | 4 | 0.951 [0.900, 1.010] |" in md
    # settings: model hash prefixes, n, max_tokens, seed, sampler, embedder, tokenizer, extra settings
    assert "a5fd3b620000" in md and "b179c9520000" in md
    assert "| max_tokens | 48 |" in md and "| seed | 0 |" in md and "| n (samples per prompt) | 5 |" in md
    assert "temperature=0.5, repetition_penalty=1.1" in md
    # scoring identity comes from summary.json's settings first (what scoring actually used)
    assert "| embedder | name=all-minilm-l6-v2, dim=384, sha256=8199be6f699a |" in md
    assert "| lexical tokenizer | nltk-treebank, stopwords removed, case kept |" in md
    assert "| coverage threshold τ | 0.62 |" in md
    assert "| prompts | open-ended=4, contested=3 |" in md and "| quick | True |" in md
    # the last line is the manifest signature
    assert md.rstrip("\n").splitlines()[-1] == f"Signature: `{SIGNATURE}`"
    assert paths.results == run_dir / "results.json"
    assert paths.verdict_lines[0] == "overton: supported"


def _cell(entry: dict[str, Any], digits: int = 3, flip: bool = False) -> str:
    mean, (lo, hi) = entry["mean"], entry["ci"]
    if flip:
        mean, lo, hi = 1 - mean, 1 - hi, 1 - lo
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def test_markdown_numbers_match_summary(run_dir: Path) -> None:
    md = build_report(run_dir, plots=False).md.read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    systems = summary["systems"]
    jac = systems[BASE]["sets"]["open-ended"]["jaccard"]
    # Jaccard and 1 - J with the flipped CI, straight from summary.json, with the set and its number of prompts
    assert f"| {BASE} | open-ended | 4 | " in md
    assert _cell(jac) in md and _cell(jac, flip=True) in md
    cq = systems[BASE]["sets"]["contested"]["jaccard"]
    assert f"| {BASE} | contested | 3 | " in md and _cell(cq) in md
    # similarity to aligned: the stored share of the chat self-baseline (summary.json ratios)
    cref = systems[ICL[1]]["sets"]["open-ended"]["cosine_to_ref"]
    share = summary["ratios"][f"{ICL[1]} / {CHAT}"]["sets"]["open-ended"]["cosine_to_ref"]
    pct = f"{100 * share['mean']:.0f}% [{100 * share['ci'][0]:.0f}%, {100 * share['ci'][1]:.0f}%]"
    assert f"| {ICL[1]} | open-ended | 4 | {_cell(cref)} | {pct} |" in md
    assert f"| {CHAT} (self-baseline) | open-ended | 4 | " in md
    # stance on the contested set only: base 2 yes + 2 no + 1 other out of 5 on each of the 3 contested prompts
    stance_row = next(line for line in md.splitlines() if line.startswith(f"| {BASE} | contested | 3 | 40%"))
    assert "| 40% | 40% | 0% | 20% |" in stance_row
    assert "## Stance on contested prompts" in md
    # overflow and truncation from samples.jsonl: one group of 35 overflowed, 1 of 5 samples cut at the cap
    assert "Prompts that overflowed the context: 1 of 35 prompt groups (2.9%)" in md
    assert f"| {ICL[1]} | 7 | 1 | 0 | 30 | 20.0% |" in md
    for note in (
        "Vendi score",
        "between 1 (all alike) and n = 5",
        "compressed range",
        "not roberta-large",
        "Lexical and semantic diversity can disagree",
        "2000 resamples",
    ):
        assert note in md


def test_stance_set_option(run_dir: Path) -> None:
    from overtonlite.errors import UsageError

    md = build_report(run_dir, plots=False, stance_set="open-ended").md.read_text()
    assert "## Stance on open-ended prompts" in md
    assert "Not measured in this run (no contested prompts or no stance labels)." in md
    with pytest.raises(UsageError, match="no prompt set 'nope'"):
        build_report(run_dir, stance_set="nope")


def test_report_of_a_run_written_by_the_previous_layout(tmp_path: Path) -> None:
    """summary.json without sets and dict evidence (files written before schema version 2) still render."""
    run = write_run(tmp_path / "run", old_layout=True)
    md = build_report(run, plots=False).md.read_text()
    assert (
        f"| evidence | {BASE} | {CHAT} |\n|---|---|---|\n| jaccard | 0.081 [0.070, 0.090] | 0.271 [0.250, 0.290] |"
        in md
    )
    old = json.loads((run / "summary.json").read_text())["systems"][BASE]["jaccard"]
    assert f"| {BASE} | all | 7 | " in md and _cell(old) in md
    assert f"| {BASE} - {CHAT} | all | 7 | -0.190 [-0.210, -0.170] |" in md


def test_html_is_self_contained_with_decodable_plots(run_dir: Path) -> None:
    paths = build_report(run_dir)
    page = parse_html(paths.html)
    raw = paths.html.read_text()
    assert not page.external and "http://" not in raw.replace("http-equiv", "") and "https://" not in raw
    assert "url(" not in raw and "@import" not in raw
    expected = {
        "plot-length",
        "plot-lexical",
        "plot-semantic",
        "plot-similarity",
        "plot-stance",
        "plot-coverage",
    }
    assert expected <= {str(img.get("id")) for img in page.imgs}
    for img in page.imgs:
        assert img.get("alt"), img.get("id")
        png = base64.b64decode(str(img["src"]).split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 300 and height > 200 and str(width) == img["width"]
    text = "".join(page.text)
    assert BANNER in text and "banner" in page.ids and "signature" in page.ids
    assert "0.951 [0.900, 1.010]" in text and "supported" in text and SIGNATURE in text
    assert 'data-plots-expected="6"' in raw


def test_missing_matplotlib_leaves_a_note_instead_of_plots(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes `import matplotlib.figure` fail
    raw = build_report(run_dir).html.read_text()
    assert "<img" not in raw and 'data-plots-expected="0"' in raw
    assert "Plot not drawn: the optional dependency 'matplotlib' is not installed; run: pip install" in raw


def test_plots_are_deterministic(run_dir: Path) -> None:
    first = build_report(run_dir).html.read_bytes()
    second = build_report(run_dir).html.read_bytes()
    assert first == second


def test_paired_differences_table(run_dir: Path) -> None:
    md = build_report(run_dir, plots=False).md.read_text()
    paired = json.loads((run_dir / "summary.json").read_text())["paired"]
    assert "| comparison | set | prompts | words | Jaccard |" in md
    for name in (f"{BASE} - {CHAT}", f"{URIAL} - {CHAT}"):
        for set_name, n in (("open-ended", 4), ("contested", 3)):
            entry = paired[name]["sets"][set_name]
            assert (
                f"| {name} | {set_name} | {n} | {_cell(entry['words_mean'], 1)} | {_cell(entry['jaccard'])} |"
                in md
            )


def _summary_only_run(run: Path, rows: list[dict[str, Any]]) -> Path:
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_summary(run, rows)
    return run


def test_similarity_uses_rescaled_bertscore_when_present(tmp_path: Path) -> None:
    rows = [
        {
            "system": s,
            "prompt_id": p,
            "cosine_to_ref": c,
            "bertscore_f1_to_ref": 0.9,
            "bertscore_f1_to_ref_rescaled": r,
        }
        for s, c, r in (("chat", 0.8, 0.4), ("urial", 0.6, 0.2))
        for p in ("a", "b")
    ]
    md = build_report(_summary_only_run(tmp_path / "run", rows), plots=False).md.read_text()
    assert (
        "| system | set | prompts | cosine | share of self | BERTScore-style F1 (rescaled) | share of self |"
        in md
    )
    assert (
        "| chat (self-baseline) | all | 2 | 0.800 [0.800, 0.800] | self | 0.400 [0.400, 0.400] | self |" in md
    )
    assert (
        "| urial | all | 2 | 0.600 [0.600, 0.600] | 75% [75%, 75%] | 0.200 [0.200, 0.200] | 50% [50%, 50%] |"
        in md
    )


def test_metrics_only_run_reports_without_verdicts(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", results=False, summary=False, manifest=False, samples=False)
    paths = build_report(run)
    md = paths.md.read_text()
    assert paths.results is None and paths.verdict_lines == ()
    assert "No results.json in this run" in md and "[!WARNING]" not in md
    assert "Not measured in this run (no samples.jsonl)." in md
    assert md.rstrip().endswith("Signature: not recorded (no manifest.json)")
    # without summary.json the report computes nothing: it points at --rescore instead
    assert md.count("no summary.json; run `overtonlite report DIR --rescore`") >= 5
    assert load_run(run).stat(BASE, "all", "jaccard") is None
    assert "0." not in md.split("## Length and diversity")[1].split("## What the metrics mean")[0]
    assert not parse_html(paths.html).imgs


def test_banner_is_synthesised_for_cross_family_pairs(tmp_path: Path) -> None:
    md = build_report(write_run(tmp_path / "run", banner=None), plots=False).md.read_text()
    assert "> [!WARNING]\n> Cross-family pair: the base model gemma-3-270m" in md


def test_partial_metrics_say_not_measured(tmp_path: Path) -> None:
    row = {"system": "a", "prompt_id": "p", "jaccard": 0.2, "cosine": None, "stance": None, "coverage": None}
    run = _summary_only_run(tmp_path / "run", [row])
    md = build_report(run, plots=False).md.read_text()
    assert "| a | all | 1 | — | 0.200 | 0.800 | — | — | — |" in md
    assert "Not measured in this run (no contested prompts or no stance labels)." in md
    assert "Not measured in this run (no similarity-to-aligned scores)." in md
    assert "<img" not in (run / "report.html").read_text()


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("results.json", "{not json", r"results\.json(:1: invalid JSON|: unreadable)"),
        ("summary.json", "[1, 2]", r"summary\.json:1: expected a JSON object"),
        ("metrics.jsonl", '{"system": "a"}\n{oops\n', r"metrics\.jsonl:2: invalid JSON"),
        ("summary.json", '{"systems": ["a"]}', r"summary\.json:1: 'systems' must be a JSON object, got list"),
        ("manifest.json", '{"systems": 3}', r"manifest\.json:1: 'systems' must be a JSON object, got int"),
    ],
)
def test_unreadable_json_is_one_line_data_error(run_dir: Path, name: str, content: str, message: str) -> None:
    (run_dir / name).write_text(content)
    with pytest.raises(DataError, match=message) as info:
        build_report(run_dir)
    assert "\n" not in str(info.value)
    assert not (run_dir / "report.md").exists()


def test_untrusted_text_is_escaped_in_html(tmp_path: Path) -> None:
    record = {"system": "<img src=x onerror=alert(1)>", "prompt_id": "p", "jaccard": 0.5, "words_mean": 3.0}
    run = _summary_only_run(tmp_path / "run", [record])
    html_text = build_report(run, plots=False).html.read_text()
    assert "<img src=x" not in html_text and "&lt;img src=x onerror=alert(1)&gt;" in html_text
    assert not parse_html(run / "report.html").imgs


def test_missing_or_empty_run_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run directory not found"):
        build_report(tmp_path / "nope")
    with pytest.raises(DataError, match="nothing to report"):
        build_report(tmp_path)


def test_writes_only_the_two_reports(run_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    build_report(run_dir)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert set(after) - set(before) == {"report.md", "report.html"}
    assert all(after[name] == content for name, content in before.items())
    assert (run_dir / "report.md").stat().st_mode & 0o044 == 0o044  # readable by others (umask 022), not 0600


def test_unwritable_report_is_one_line_error(run_dir: Path) -> None:
    from overtonlite.errors import OvertonliteError

    (run_dir / "report.md").mkdir()  # a directory in the way: the rename fails even for root
    with pytest.raises(OvertonliteError, match="cannot write the report") as info:
        build_report(run_dir, plots=False)
    assert "\n" not in str(info.value)
    assert not list(run_dir.glob(".report.*.tmp"))


def test_report_reads_and_never_computes(run_dir: Path) -> None:
    """Building a report imports neither the experiments nor the scoring code, nor numpy (no bootstrap)."""
    import subprocess
    import sys

    code = (
        "import sys; from overtonlite.report import build_report; "
        f"build_report({str(run_dir)!r}, plots=False); "
        "print(sorted(m for m in sys.modules if m.startswith(('overtonlite.experiments', 'overtonlite.scoring')) "
        "or m == 'numpy'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_rescore_rebuilds_summary_and_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from overtonlite.experiments import replicate as rep
    from tests.exp_fakes import HashEmbedder, fake_pair

    rep.replicate(out=tmp_path, quick=True, models=fake_pair(), embedder=HashEmbedder(), report=False)
    summary = (tmp_path / "summary.json").read_bytes()
    claims = json.loads((tmp_path / "results.json").read_text())["claims"]
    (tmp_path / "summary.json").unlink()
    (tmp_path / "metrics.jsonl").unlink()
    monkeypatch.setattr("overtonlite.backends.onnx.open_default_embedder", lambda *a, **k: HashEmbedder())
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--rescore", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "summary.json").read_bytes() == summary  # the same scoring as replicate's
    assert json.loads((tmp_path / "results.json").read_text())["claims"] == claims
    (tmp_path / "samples.jsonl").unlink()
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--rescore"])
    assert result.exit_code == 2 and "cannot rescore" in result.output


def test_cli_report_prints_paths_and_verdicts(run_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(run_dir), "--no-plots"])
    assert result.exit_code == 0, result.output
    out = re.sub(r"\s+", " ", result.output)
    assert "report.md" in out and "report.html" in out
    assert "overton: supported" in out and "recoverability: inconclusive" in out
    result = CliRunner().invoke(cli, ["report", str(run_dir), "--no-plots", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdicts"] == {"overton": "supported", "recoverability": "inconclusive"}


def test_cli_report_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from overtonlite.cli import main

    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "missing")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and "run directory not found" in err and "\n" not in err


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, overtonlite.report, overtonlite.cli.report_cmd; "
        "print(any(m.startswith('matplotlib') or m == 'numpy' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_report_of_a_replicate_run_with_fakes(tmp_path: Path) -> None:
    """The experiments' own results.json / summary.json / metrics.jsonl, as `replicate` writes them with fakes."""
    pytest.importorskip(
        "overtonlite.metrics.stats", reason="the scoring statistics module is not in this tree yet"
    )
    pytest.importorskip(
        "overtonlite.metrics.style", reason="the scoring style module is not in this tree yet"
    )
    from overtonlite.experiments import replicate as rep
    from tests.exp_fakes import HashEmbedder, fake_pair

    rep.replicate(out=tmp_path, quick=True, models=fake_pair(), embedder=HashEmbedder(), report=False)
    paths = build_report(tmp_path)
    md = paths.md.read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(results["claims"]) == {"overton", "recoverability"}
    for name, claim in results["claims"].items():
        assert f"**{name}**: {claim['verdict']}" in md
        assert f"{name}: {claim['verdict']}" in paths.verdict_lines
        for line in claim["lines"]:
            assert f"- {line}" in md
    assert "> [!WARNING]\n> " + results["banner"][0].upper() + results["banner"][1:] in md
    assert "(reference system: chat)" in md and "| chat (self-baseline) |" in md
    assert md.rstrip("\n").splitlines()[-1] == f"Signature: `{manifest['signature']}`"
    ids = {str(img.get("id")) for img in parse_html(paths.html).imgs}
    assert {
        "plot-length",
        "plot-lexical",
        "plot-semantic",
        "plot-similarity",
        "plot-stance",
        "plot-coverage",
    } <= ids


def test_judge_section_shows_proxy_and_judge_side_by_side(tmp_path: Path) -> None:
    rows = [
        {
            "system": s,
            "prompt_id": p,
            "set": "contested",
            "stance": ["yes"] * 5,
            "stance_both_share": both,
            "yes_no_split": 0.0,
            "stance_judge_both_share": jb,
            "yes_no_split_judge": True,
        }
        for s, both, jb in (("base", 0.2, 0.4), ("chat", 0.8, 0.6))
        for p in ("cq1", "cq2")
    ]
    run = _summary_only_run(tmp_path / "run", rows)
    summary = json.loads((run / "summary.json").read_text())
    summary["settings"]["judge"] = {
        "name": "judge-model",
        "backend": "llama.cpp",
        "tasks": ["stance"],
        "id": "abc",
        "counts": {"stance": {"judged": 20, "errors": 1}},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    md = build_report(run, plots=False).md.read_text()
    assert "## Judge and proxy" in md
    assert "`judge-model` (llama.cpp)" in md and "20 judgments, 1 failed" in md
    assert '| base | contested | 2 | "both" share | 0.200 [0.200, 0.200] | 0.400 [0.400, 0.400] |' in md
    assert "| chat | contested | 2 | yes/no split rate | 0.000 [0.000, 0.000] | 1.000 [1.000, 1.000] |" in md


def test_no_judge_section_without_a_judge(run_dir: Path) -> None:
    assert "Judge and proxy" not in build_report(run_dir, plots=False).md.read_text()


def test_stance_table_shows_the_confusion_corrected_values(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    entry = summary["systems"][BASE]["sets"]["contested"]["stance_both_share_corrected"]
    md = build_report(run_dir, plots=False).md.read_text()
    assert '"both" share, corrected | split rate, corrected |' in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {BASE} | contested |") and "%" in line)
    assert _cell(entry) in row


def test_truncation_column_reads_results_json_and_is_not_measured_without_finish_reasons(
    tmp_path: Path,
) -> None:
    from overtonlite.report.markdown import MISSING

    run = _summary_only_run(
        tmp_path / "run",
        [{"system": s, "prompt_id": p, "jaccard": 0.2} for s in ("base", "chat") for p in ("a", "b")],
    )
    groups = [
        {"system": s, "prompt_id": p, "samples": [{"text": "x"}, {"text": "y"}]}
        for s in ("base", "chat")
        for p in ("a", "b")
    ]
    (run / "samples.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups))
    md = build_report(run, plots=False).md.read_text()
    assert f"| base | 2 | 0 | 0 | 4 | {MISSING} |" in md  # no finish reasons: not 0 %
    (run / "results.json").write_text(json.dumps({"truncation": {"base": 0.25}, "claims": {}}))
    md = build_report(run, plots=False).md.read_text()
    assert "| base | 2 | 0 | 0 | 4 | 25.0% |" in md
