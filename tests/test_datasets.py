"""Prompt sets: the built-in sets and the JSONL / CSV loaders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from overtonlite.datasets import BUILTIN_SETS, Prompt, load_prompts
from overtonlite.errors import DataError, UsageError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- built-in sets -------------------------------------------------------------------------------------------


def test_builtin_sets_are_listed() -> None:
    assert set(BUILTIN_SETS) == {"open-ended", "contested"}


def test_open_ended_set_shape() -> None:
    prompts = load_prompts("builtin:open-ended")
    assert len(prompts) >= 45
    assert [p.id for p in prompts] == [f"oe-{i:03d}" for i in range(1, len(prompts) + 1)]
    assert len({p.text for p in prompts}) == len(prompts)
    for p in prompts:
        assert p.meta["set"] == "open-ended"
        assert p.messages is None
        assert 8 <= len(p.text.split()) <= 40, p.text
        assert p.text == p.text.strip()


def test_contested_set_is_yes_no_questions() -> None:
    prompts = load_prompts("builtin:contested")
    assert len(prompts) >= 45
    assert all(re.fullmatch(r"cq-\d{3}", p.id) for p in prompts)
    assert len({p.text.lower() for p in prompts}) == len(prompts)
    openers = ("Is ", "Does ", "Can ", "Should ", "Are ", "Do ", "Did ", "Could ")
    for p in prompts:
        assert p.meta["set"] == "contested"
        assert p.text.endswith("?"), p.text
        assert p.text.startswith(openers), p.text
        assert len(p.text.split()) <= 20


def test_builtin_limit_keeps_first() -> None:
    full = load_prompts("builtin:contested")
    assert load_prompts("builtin:contested", limit=3) == full[:3]
    assert load_prompts("builtin:contested", limit=10_000) == full


def test_unknown_builtin_lists_known() -> None:
    with pytest.raises(UsageError, match="builtin:open-ended, builtin:contested"):
        load_prompts("builtin:nope")


@pytest.mark.parametrize("limit", [0, -2])
def test_bad_limit(limit: int) -> None:
    with pytest.raises(UsageError, match="--limit"):
        load_prompts("builtin:open-ended", limit=limit)


# -- JSONL -------------------------------------------------------------------------------------------------------


def test_jsonl_prompts_messages_and_default_ids(tmp_path: Path) -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    path = _write(
        tmp_path / "p.jsonl",
        json.dumps({"prompt": "first", "topic": "x"})
        + "\n\n"
        + json.dumps({"messages": msgs})
        + "\n"
        + json.dumps({"id": "custom", "prompt": "third"})
        + "\n",
    )
    prompts = load_prompts(path)
    assert [p.id for p in prompts] == ["0", "2", "custom"]
    assert prompts[0] == Prompt(id="0", text="first")
    assert prompts[0].meta == {"topic": "x"}
    assert prompts[1].text == "Name a colour."
    assert prompts[1].messages == tuple(msgs)
    assert prompts[1].chat_messages() == msgs
    assert prompts[2].chat_messages() == [{"role": "user", "content": "third"}]


def test_reference_style_integer_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "ref.jsonl", '{"id": 0, "prompt": "a?"}\n{"id": 7, "prompt": "b?"}\n')
    assert [(p.id, p.text) for p in load_prompts(str(path))] == [("0", "a?"), ("7", "b?")]


def test_reference_prompt_files_load(reference_dir: Path) -> None:
    for sub in ("lima-oe", "conflictingqa"):
        prompts = load_prompts(reference_dir / sub / "prompts.jsonl")
        assert len(prompts) >= 50
        assert all(isinstance(p.id, str) and p.text for p in prompts)
        assert len({p.id for p in prompts}) == len(prompts)


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ('{"prompt": "ok"}\n{"prompt": "broken"\n', 2, "invalid JSON"),
        ('{"prompt": "ok"}\n[1, 2]\n', 2, "expected a JSON object"),
        ('{"prompt": 3}\n', 1, "'prompt' must be a string"),
        ('{"prompt": "   "}\n', 1, "'prompt' is empty"),
        ('{"text": "no prompt key"}\n', 1, "needs a 'prompt'"),
        ('{"messages": []}\n', 1, "'messages' must be a non-empty list"),
        ('{"messages": [{"role": "bot", "content": "x"}]}\n', 1, "unknown role"),
        (
            '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n',
            1,
            "last",
        ),
        ('{"id": true, "prompt": "x"}\n', 1, "'id' must be"),
        (
            '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n{"id": "a", "prompt": "z"}\n',
            3,
            "duplicate id",
        ),
        ('{"prompt": "x"}\n{"id": "0", "prompt": "y"}\n', 2, "duplicate id '0'"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, content: str, line: int, reason: str) -> None:
    path = _write(tmp_path / "bad.jsonl", content)
    with pytest.raises(DataError) as info:
        load_prompts(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert reason in msg
    assert "\n" not in msg
    assert info.value.exit_code == 2


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.jsonl", "\n\n")
    with pytest.raises(DataError, match="no prompts"):
        load_prompts(empty)
    with pytest.raises(DataError, match="no such file"):
        load_prompts(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="is a directory"):
        load_prompts(tmp_path)


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b'{"prompt": "\xff\xfe"}\n')
    with pytest.raises(DataError, match="UTF-8"):
        load_prompts(path)


def test_unknown_extension_is_sniffed(tmp_path: Path) -> None:
    as_json = _write(tmp_path / "p.txt", '{"prompt": "hello there"}\n')
    as_csv = _write(tmp_path / "q.txt", "prompt\nhello there\n")
    assert load_prompts(as_json)[0].text == "hello there"
    assert load_prompts(as_csv)[0].text == "hello there"


# -- CSV ---------------------------------------------------------------------------------------------------------


def test_csv_with_and_without_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.csv", 'prompt,topic\n"Is tea, or coffee, better?",drinks\n\nSecond one,x\n')
    prompts = load_prompts(path)
    assert [(p.id, p.text) for p in prompts] == [("0", "Is tea, or coffee, better?"), ("1", "Second one")]
    assert prompts[0].meta == {"topic": "drinks"}
    with_ids = _write(tmp_path / "i.csv", "id,prompt\nq1,alpha\nq2,beta\n")
    assert [p.id for p in load_prompts(with_ids, limit=1)] == ["q1"]


def test_csv_multiline_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", 'id,prompt\na,"line one\nline two"\nb,other\n')
    assert [p.text for p in load_prompts(path)] == ["line one\nline two", "other"]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("question\nwhat?\n", 1, "'prompt' column"),
        ("", 1, "'prompt' column"),
        ("id,prompt\na,ok\nb,\n", 3, "'prompt' is empty"),
        ("id,prompt\na,ok\nb,x,extra\n", 3, "more fields"),
        ("id,prompt\na,ok\na,again\n", 3, "duplicate id"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path: Path, content: str, line: int, reason: str) -> None:
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError) as info:
        load_prompts(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert reason in str(info.value)
