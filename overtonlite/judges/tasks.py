"""The judge tasks: what the judge reads, the JSON it must answer with, and how an answer is checked.

The instructions are ours, written from the rubric in ``paper-protocol.md`` §4.3-§4.5 (stance on a yes/no
question; how much of an alternative answer's information a reference answer lacks; five quality aspects). Each
task gives its answer format twice, from one field list: a JSON schema (sent to servers as ``response_format``) and
a GBNF grammar (for llama.cpp's grammar sampler on local GGUF models). A short ``reason`` comes first when asked
for (the paper's judges gave one). The judge is asked to keep it under :data:`REASON_CHARS` characters (the JSON
schema says so too); the GBNF grammar does not bound it, because llama.cpp's grammar sampler gets very slow on long
bounded repetitions. An answer cut off by the task's token budget does not parse and is asked again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REASON_CHARS = 240
STANCES = ("yes", "no", "both", "other")
QUALITY_ASPECTS = ("helpfulness", "clarity", "factuality", "depth", "engagement")

SYSTEM = (
    "You are a careful, impartial annotator. You read the material you are given and answer only with the JSON "
    "object that is asked for."
)

_STANCE = """Here is a question that can be answered with yes or no, followed by one response to it.

Question: {query}

Response:
<<<
{response}
>>>

Decide which position the response takes on the question:
- "yes": it answers the question in the affirmative;
- "no": it answers the question in the negative;
- "both": it sets out considerations for the affirmative side and for the negative side;
- "other": it does not address the question, or it gives no answer to it.
Judge only the position. Do not consider whether the response is correct, helpful or well written."""

_MISSING = """Here is a question with two answers to it: a reference answer and an alternative answer.

Question: {query}

Reference answer:
<<<
{reference}
>>>

Alternative answer:
<<<
{alternative}
>>>

How much of the information in the alternative answer is absent from the reference answer? Give a score:
1 = none: everything the alternative says is already in the reference;
2 = a little: the alternative adds some information, but most of it is already in the reference;
3 = about half of the alternative's information is new;
4 = most of the alternative's information is new;
5 = all of it is new.
Consider only information. Ignore relevance, helpfulness, fluency, correctness and tone."""

_QUALITY = """Here is a user's request followed by an assistant's response.

Request: {query}

Response:
<<<
{response}
>>>

Rate the response on each aspect from 1 (very poor) to 5 (excellent):
- helpfulness: it addresses the request and meets the user's need;
- clarity: it is well organised and easy to follow;
- factuality: what it states is accurate;
- depth: it goes into detail and covers the topic thoroughly;
- engagement: it reads naturally and engages the user, in a fitting tone."""


@dataclass(frozen=True)
class Field:
    """One field of an answer: ``kind`` "enum" (``choices``), "score" (integer 1-5) or "reason" (short text)."""

    name: str
    kind: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Task:
    """A judge task: its instruction template, inputs and answer fields."""

    name: str
    template: str
    inputs: tuple[str, ...]
    fields: tuple[Field, ...]
    max_tokens: int = 160

    def answer_fields(self, with_reason: bool) -> tuple[Field, ...]:
        return ((Field("reason", "reason"),) if with_reason else ()) + self.fields

    def messages(self, inputs: Mapping[str, str], *, with_reason: bool) -> list[dict[str, str]]:
        """The chat messages for one judgment (the system message, then the filled-in instruction)."""
        missing = [k for k in self.inputs if k not in inputs]
        if missing:
            raise ValueError(f"{self.name} judgment needs {', '.join(missing)}")
        body = self.template.format(**{k: str(inputs[k]).strip() for k in self.inputs})
        names = ", ".join(f'"{f.name}"' for f in self.answer_fields(with_reason))
        tail = f"\n\nAnswer with one JSON object with the keys {names}"
        if with_reason:
            tail += f' ("reason": one or two sentences, at most {REASON_CHARS} characters)'
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body + tail + "."}]

    def schema(self, *, with_reason: bool) -> dict[str, Any]:
        """The JSON schema of an answer."""
        props: dict[str, Any] = {}
        for f in self.answer_fields(with_reason):
            if f.kind == "enum":
                props[f.name] = {"type": "string", "enum": list(f.choices)}
            elif f.kind == "score":
                props[f.name] = {"type": "integer", "minimum": 1, "maximum": 5}
            else:
                props[f.name] = {"type": "string", "maxLength": REASON_CHARS}
        names = [f.name for f in self.answer_fields(with_reason)]
        return {"type": "object", "properties": props, "required": names, "additionalProperties": False}

    def grammar(self, *, with_reason: bool) -> str:
        """A GBNF grammar accepting exactly the answers of :meth:`schema` (keys in order, compact spacing)."""
        parts, rules = [], {}
        for i, f in enumerate(self.answer_fields(with_reason)):
            sep = '"," ws ' if i else ""
            parts.append(f'{sep}"\\"{f.name}\\"" ws ":" ws {f.kind}-{f.name}')
            if f.kind == "enum":
                rules[f"{f.kind}-{f.name}"] = " | ".join(f'"\\"{c}\\""' for c in f.choices)
            elif f.kind == "score":
                rules[f"{f.kind}-{f.name}"] = "[1-5]"
            else:
                rules[f"{f.kind}-{f.name}"] = '"\\"" [^"\\\\\\x00-\\x1f]* "\\""'
        lines = ['root ::= "{" ws ' + " ".join(parts) + ' ws "}"', "ws ::= [ ]?"]
        lines += [f"{name} ::= {rule}" for name, rule in rules.items()]
        return "\n".join(lines) + "\n"

    def parse(self, text: str, *, with_reason: bool) -> dict[str, Any]:
        """The checked answer: ``ValueError`` when ``text`` is not one JSON object of the schema."""
        obj = json.loads(text.strip())
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        want = {f.name for f in self.answer_fields(with_reason)}
        if set(obj) != want:
            raise ValueError(f"keys {sorted(obj)} instead of {sorted(want)}")
        out: dict[str, Any] = {}
        for f in self.answer_fields(with_reason):
            v = obj[f.name]
            if f.kind == "enum":
                if v not in f.choices:
                    raise ValueError(f"{f.name}={v!r} is not one of {', '.join(f.choices)}")
            elif f.kind == "score":
                if isinstance(v, str) and v.strip().isdigit():  # "3" as the paper's judges wrote it
                    v = int(v.strip())
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
                    raise ValueError(f"{f.name}={v!r} is not an integer from 1 to 5")
            elif not isinstance(v, str):
                raise ValueError(f"{f.name} is not a string")
            out[f.name] = v
        return out

    def label(self, answer: Mapping[str, Any]) -> Any:
        """The value stored as the judgment's label: the stance, the 1-5 score, or the aspect scores."""
        if self.name == "quality":
            return {a: answer[a] for a in QUALITY_ASPECTS}
        return answer[self.fields[0].name]


STANCE = Task("stance", _STANCE, ("query", "response"), (Field("stance", "enum", STANCES),))
MISSING = Task("missing", _MISSING, ("query", "reference", "alternative"), (Field("score", "score"),))
QUALITY = Task(
    "quality",
    _QUALITY,
    ("query", "response"),
    tuple(Field(a, "score") for a in QUALITY_ASPECTS),
    max_tokens=200,
)
TASKS: dict[str, Task] = {t.name: t for t in (STANCE, MISSING, QUALITY)}


def parse_tasks(spec: str | Any) -> tuple[Task, ...]:
    """``"stance,missing"`` (or a list of names) -> tasks; ValueError naming the valid ones otherwise."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    bad = [n for n in names if n not in TASKS]
    if bad or not names:
        raise ValueError(f"unknown judge task(s) {', '.join(bad) or '(none)'}; valid: {', '.join(TASKS)}")
    return tuple(TASKS[n] for n in dict.fromkeys(names))
