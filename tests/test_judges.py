"""Judges: task schemas and grammars, parsing, retries then recorded errors, the judgment cache and resume, the
metrics keys. Fast tests drive the Judge with a scripted engine; the grammar is compiled by llama.cpp itself when
it is installed, and the real local and served judges run in the realmodel tests (test_served_real.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from overtonlite.judges import MISSING, QUALITY, STANCE, Judge, JudgeItem, parse_tasks
from overtonlite.judges.apply import judge_records
from overtonlite.judges.engine import JudgeUnavailable


class ScriptedEngine:
    """Answers from a list (one per call), records the calls."""

    def __init__(self, answers: list[str], name: str = "scripted") -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []
        self.name = name

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "backend": "scripted", "model_sha256": "0" * 64}

    def complete(self, messages: list[dict[str, str]], **kw: Any) -> str:
        self.calls.append({"messages": messages, **kw})
        answer = self.answers.pop(0)
        if answer == "TOO_LONG":
            raise JudgeUnavailable("prompt_too_long: the prompt does not fit")
        return answer

    def close(self) -> None:
        pass


def test_schema_and_parse_agree() -> None:
    s = STANCE.schema(with_reason=True)
    assert s["required"] == ["reason", "stance"] and s["properties"]["stance"]["enum"] == [
        "yes",
        "no",
        "both",
        "other",
    ]
    assert STANCE.parse('{"reason": "r", "stance": "both"}', with_reason=True) == {
        "reason": "r",
        "stance": "both",
    }
    assert MISSING.parse('{"score": "4"}', with_reason=False) == {"score": 4}  # "4" as GPT-4 wrote scores
    for bad in ('{"stance": "maybe"}', '{"stance": "yes", "x": 1}', "[1]", '{"stance": "yes"', ""):
        with pytest.raises(ValueError):
            STANCE.parse(bad, with_reason=False)
    for bad in ('{"score": 6}', '{"score": 0}', '{"score": true}', '{"score": 2.5}'):
        with pytest.raises(ValueError):
            MISSING.parse(bad, with_reason=False)
    q = QUALITY.parse(
        json.dumps({a: 3 for a in ("helpfulness", "clarity", "factuality", "depth", "engagement")}),
        with_reason=False,
    )
    assert QUALITY.label(q)["depth"] == 3
    assert [t.name for t in parse_tasks("stance, quality")] == ["stance", "quality"]
    with pytest.raises(ValueError, match="unknown judge task"):
        parse_tasks("stance,vibes")


def test_messages_fill_the_rubric_and_need_every_input() -> None:
    msgs = MISSING.messages({"query": "Q?", "reference": "REF", "alternative": "ALT"}, with_reason=False)
    assert msgs[0]["role"] == "system" and "REF" in msgs[1]["content"] and "ALT" in msgs[1]["content"]
    assert '"score"' in msgs[1]["content"] and "reason" not in msgs[1]["content"]
    with pytest.raises(ValueError, match="needs reference"):
        MISSING.messages({"query": "Q?", "alternative": "A"}, with_reason=False)


@pytest.mark.parametrize("task", [STANCE, MISSING, QUALITY])
@pytest.mark.parametrize("with_reason", [True, False])
def test_grammars_compile_in_llama_cpp(task, with_reason: bool) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    grammar = task.grammar(with_reason=with_reason)
    assert grammar.startswith("root ::=")
    llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)  # raises ValueError on a bad grammar


def test_malformed_answer_is_retried_then_recorded_not_guessed() -> None:
    eng = ScriptedEngine(['{"stance": "yes"', '{"stance": "both"}'])
    judge = Judge(eng, with_reason=False, attempts=3)
    res = judge.judge_one(STANCE, {"query": "Q?", "response": "R"})
    assert res["label"] == "both" and res["attempts"] == 2
    assert [c["temperature"] for c in eng.calls] == [0.0, 0.7] and [c["seed"] for c in eng.calls] == [0, 1]
    eng = ScriptedEngine(["nope", "still nope", '{"stance": "perhaps"}'])
    res = Judge(eng, with_reason=False, attempts=3).judge_one(STANCE, {"query": "Q?", "response": "R"})
    assert res["label"] is None and res["error"].startswith("malformed answer") and res["attempts"] == 3
    assert res["raw"] == '{"stance": "perhaps"}'
    res = Judge(ScriptedEngine(["TOO_LONG"]), with_reason=False).judge_one(
        STANCE, {"query": "Q", "response": "R"}
    )
    assert res["label"] is None and res["error"].startswith("prompt_too_long") and res["attempts"] == 1


def test_cache_resumes_and_keys_on_judge_and_prompt(tmp_path: Path) -> None:
    items = [
        JudgeItem(STANCE, {"query": "Q?", "response": f"R{i}"}, {"prompt_id": "p", "sample_index": i})
        for i in range(3)
    ]
    eng = ScriptedEngine(['{"stance": "yes"}', '{"stance": "no"}', "bad", "bad"])
    judge = Judge(eng, with_reason=False, attempts=2)
    out = judge.judge_many(items, cache_dir=tmp_path)
    assert [r["label"] for r in out] == ["yes", "no", None] and out[2]["error"]
    lines = (tmp_path / "judgments.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    assert (
        rec["judge"] == "scripted" and rec["judge_id"] == judge.judge_id and len(rec["prompt_sha256"]) == 64
    )
    assert rec["task"] == "stance" and rec["prompt_id"] == "p" and rec["sample_index"] == 0
    # a rerun makes nothing new (errors are cached too) ...
    eng2 = ScriptedEngine([])
    again = Judge(eng2, with_reason=False, attempts=2).judge_many(items, cache_dir=tmp_path)
    assert [r["label"] for r in again] == ["yes", "no", None] and eng2.calls == []
    # ... unless asked to retry errors; a torn last line (interrupted append) is skipped
    with open(tmp_path / "judgments.jsonl", "a") as fh:
        fh.write('{"key": "torn')
    eng3 = ScriptedEngine(['{"stance": "both"}'])
    fixed = Judge(eng3, with_reason=False, attempts=2).judge_many(
        items, cache_dir=tmp_path, retry_errors=True
    )
    assert [r["label"] for r in fixed] == ["yes", "no", "both"] and len(eng3.calls) == 1
    # another judge (another model) is another judgment
    other = ScriptedEngine(['{"stance": "other"}'] * 3, name="other-judge")
    assert [r["label"] for r in Judge(other, with_reason=False).judge_many(items, cache_dir=tmp_path)] == [
        "other"
    ] * 3


class _G:
    def __init__(self, system: str, pid: str, prompt: str, texts: list[str]) -> None:
        self.system, self.pid, self.prompt, self.texts = system, pid, prompt, texts


def test_judge_records_run_where_the_proxy_ran(tmp_path: Path) -> None:
    groups = [
        _G("chat", "q1", "Is X good?", ["Both sides.", "Yes."]),
        _G("base", "q1", "Is X good?", ["No.", "Yes"]),
    ]
    records = [{"stance": ["both", "yes"], "missing": None}, {"stance": ["no", "yes"], "missing": [1, 3]}]
    answers = {
        "Both sides.": '{"stance": "both"}',
        "Yes.": '{"stance": "yes"}',
        "No.": '{"stance": "no"}',
        "Yes": '{"stance": "yes"}',
    }

    class ByText(ScriptedEngine):
        def complete(self, messages: list[dict[str, str]], **kw: Any) -> str:
            self.calls.append(kw)
            content = messages[1]["content"]
            if "Alternative answer" in content:
                return '{"score": 2}' if "<<<\nNo.\n>>>" in content else "garbage"
            resp = content.split("<<<\n", 1)[1].split("\n>>>", 1)[0]
            return answers[resp]

    judge = Judge(ByText([]), with_reason=False, attempts=1)
    counts = judge_records(
        records, groups, judge, tasks=parse_tasks("stance,missing"), reference_system="chat", out=tmp_path
    )
    assert records[0]["stance_judge"] == ["both", "yes"] and records[0]["missing_judge"] is None
    assert records[1]["stance_judge"] == ["no", "yes"] and records[1]["yes_no_split_judge"] is True
    assert records[1]["missing_judge"] == [2, None] and records[1]["missing_judge_mean"] == 2.0
    assert records[1]["missing_judge_le2_share"] == 1.0 and records[1]["judge_errors"] == 1
    assert records[0]["stance_judge_both_share"] == 0.5 and records[0]["judge_errors"] == 0
    assert counts == {"stance": {"judged": 4, "errors": 0}, "missing": {"judged": 2, "errors": 1}}


def test_score_input_with_a_judge_keeps_the_proxy_and_adds_the_judge(tmp_path: Path) -> None:
    from overtonlite.scoring import score_input
    from tests.exp_fakes import HashEmbedder

    rows = [
        {
            "system": "chat",
            "prompt_id": "c1",
            "prompt": "Is coffee bad for you?",
            "set": "contested",
            "samples": ["It depends: some risks, some benefits.", "No, moderate coffee is fine."],
        },
        {
            "system": "base",
            "prompt_id": "c1",
            "prompt": "Is coffee bad for you?",
            "set": "contested",
            "samples": ["Yes, it is bad.", "No."],
        },
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    class Always(ScriptedEngine):
        def complete(self, messages: list[dict[str, str]], **kw: Any) -> str:
            self.calls.append(kw)
            return '{"score": 2}' if "Alternative answer" in messages[1]["content"] else '{"stance": "both"}'

    plain = score_input(
        inp, out=tmp_path / "plain", reference_system="chat", embedder=HashEmbedder(), n_boot=50
    )
    judged = score_input(
        inp,
        out=tmp_path / "judged",
        reference_system="chat",
        embedder=HashEmbedder(),
        n_boot=50,
        judge=Judge(Always([]), with_reason=False),
    )
    assert "judge" not in plain.settings and judged.settings["judge"]["name"] == "scripted"
    assert judged.settings["judge"]["counts"]["stance"] == {"judged": 4, "errors": 0}
    lines = {
        (r["system"], r["prompt_id"]): r
        for r in map(json.loads, (tmp_path / "judged" / "metrics.jsonl").read_text().splitlines())
    }
    plain_lines = {
        (r["system"], r["prompt_id"]): r
        for r in map(json.loads, (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines())
    }
    base = lines[("base", "c1")]
    assert base["stance_judge"] == ["both", "both"] and base["missing_judge"] == [2, 2]
    assert base["stance"] == plain_lines[("base", "c1")]["stance"]  # the proxy labels are unchanged
    assert "stance_judge" not in plain_lines[("base", "c1")]
    assert (tmp_path / "judged" / "judgments.jsonl").is_file()


def test_reference_sample_zero_is_not_judged_against_itself(tmp_path: Path) -> None:
    groups = [_G("chat", "q1", "How?", ["Ref answer.", "Other answer."])]
    records = [{"stance": None, "missing": [None, 2]}]
    eng = ScriptedEngine(['{"score": 3}'])
    judge_records(
        records,
        groups,
        Judge(eng, with_reason=False),
        tasks=parse_tasks("missing"),
        reference_system="chat",
        out=tmp_path,
    )
    assert records[0]["missing_judge"] == [None, 3] and len(eng.calls) == 1
