"""Judges: the paper's judge tasks (stance, missing information, quality) run by a local or served chat model,
with the answer constrained to a JSON schema.

* :func:`open_judge` opens a registry chat model as a judge: a local GGUF under a GBNF grammar, a served model with
  ``response_format`` (see :mod:`overtonlite.judges.engine`).
* :meth:`Judge.judge_many` makes judgments, each cached in ``judgments.jsonl`` (see :mod:`overtonlite.judges.store`)
  with the judge's identity and the prompt's sha256, so a rerun only makes what is missing.
* An answer that does not parse or breaks the schema is asked again (up to ``attempts`` times: first greedy, then
  sampled at temperature 0.7 with a new seed); if none is valid, the judgment is recorded as an error with the
  last raw answer. A label is never guessed from a malformed answer.
* :mod:`overtonlite.judges.apply` adds judge labels to ``metrics.jsonl`` records (``score --judge``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overtonlite.config import stable_hash
from overtonlite.errors import UsageError
from overtonlite.judges.engine import EndpointEngine, JudgeUnavailable, LocalEngine
from overtonlite.judges.store import JudgmentCache, judgment_key, prompt_sha256
from overtonlite.judges.tasks import MISSING, QUALITY, STANCE, TASKS, Task, parse_tasks

__all__ = ["MISSING", "QUALITY", "STANCE", "TASKS", "Judge", "JudgeItem", "Task", "open_judge", "parse_tasks"]

RETRY_TEMPERATURE = 0.7


@dataclass(frozen=True)
class JudgeItem:
    """One judgment to make: the task, its inputs, and where it belongs (stored alongside, not hashed)."""

    task: Task
    inputs: Mapping[str, str]
    meta: Mapping[str, Any]


class Judge:
    """A judge over an engine. ``with_reason`` asks for a short reason before the label (as the paper's judges
    gave); ``attempts`` bounds the tries per judgment; ``workers`` requests run at once (1 for a local model)."""

    def __init__(self, engine: Any, *, with_reason: bool = True, attempts: int = 3, workers: int = 1) -> None:
        if attempts < 1:
            raise UsageError(f"judge attempts must be >= 1, got {attempts}")
        self.engine = engine
        self.with_reason = with_reason
        self.attempts = attempts
        self.workers = max(1, workers)

    @property
    def name(self) -> str:
        return str(self.engine.name)

    def identity(self) -> dict[str, Any]:
        """Who judged: engine identity plus the answer settings (what ``summary.json`` records)."""
        ident = dict(self.engine.identity())
        ident.update(with_reason=self.with_reason, attempts=self.attempts, id=self.judge_id)
        return ident

    @property
    def judge_id(self) -> str:
        ident = self.engine.identity()
        stable = {k: ident.get(k) for k in ("name", "backend", "model_sha256", "model")}
        return stable_hash(stable, 16)

    def judge_one(self, task: Task, inputs: Mapping[str, str]) -> dict[str, Any]:
        """One judgment, uncached: ``{"label", "answer", "raw", "error", "attempts"}``."""
        messages = task.messages(inputs, with_reason=self.with_reason)
        grammar = task.grammar(with_reason=self.with_reason)
        schema = task.schema(with_reason=self.with_reason)
        raw, problem = "", ""
        for attempt in range(self.attempts):
            temperature = 0.0 if attempt == 0 else RETRY_TEMPERATURE
            try:
                raw = self.engine.complete(
                    messages,
                    grammar=grammar,
                    schema=schema,
                    max_tokens=task.max_tokens,
                    temperature=temperature,
                    seed=attempt,
                )
            except JudgeUnavailable as exc:
                return {
                    "label": None,
                    "answer": None,
                    "raw": "",
                    "error": str(exc)[:300],
                    "attempts": attempt + 1,
                }
            try:
                answer = task.parse(raw, with_reason=self.with_reason)
            except ValueError as exc:
                problem = f"malformed answer: {exc}"
                continue
            return {
                "label": task.label(answer),
                "answer": answer,
                "raw": raw,
                "error": None,
                "attempts": attempt + 1,
            }
        return {
            "label": None,
            "answer": None,
            "raw": raw[:2000],
            "error": problem[:300],
            "attempts": self.attempts,
        }

    def judge_many(
        self,
        items: Sequence[JudgeItem],
        *,
        cache_dir: str | Path,
        retry_errors: bool = False,
        progress: Any = None,
    ) -> list[dict[str, Any]]:
        """Every item's judgment record, from the cache in ``cache_dir`` or made now (and then cached)."""
        cache = JudgmentCache(cache_dir, retry_errors=retry_errors)
        jid = self.judge_id
        keyed = []
        for item in items:
            messages = item.task.messages(item.inputs, with_reason=self.with_reason)
            phash = prompt_sha256(messages)
            keyed.append((judgment_key(jid, item.task.name, self.with_reason, phash), phash, item))
        todo = list({k: (k, h, it) for k, h, it in keyed if cache.get(k) is None}.values())

        def work(entry: tuple[str, str, JudgeItem]) -> None:
            key, phash, item = entry
            res = self.judge_one(item.task, item.inputs)
            cache.put(
                {
                    "key": key,
                    "judge": self.name,
                    "judge_id": jid,
                    "task": item.task.name,
                    "prompt_sha256": phash,
                    "with_reason": self.with_reason,
                    **dict(item.meta),
                    **res,
                }
            )
            if progress is not None:
                progress(item.task.name)

        if self.workers == 1:
            for entry in todo:
                work(entry)
        else:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                list(pool.map(work, todo))
        return [dict(cache.get(k) or {}) for k, _, _ in keyed]

    def close(self) -> None:
        self.engine.close()


def open_judge(
    spec_or_name: Any,
    *,
    registry: Any = None,
    threads: int | None = None,
    with_reason: bool = True,
    attempts: int = 3,
    n_ctx: int = 4096,
) -> Judge:
    """A judge on a registry chat model (name or ``ModelSpec``): local GGUF with a grammar, or served."""
    from overtonlite.backends import endpoint_api_key
    from overtonlite.registry import load_registry

    if isinstance(spec_or_name, str):
        spec = (registry or load_registry()).model(spec_or_name)
    else:
        spec = spec_or_name
    if spec.role != "chat":
        raise UsageError(f"the judge '{spec.name}' is a {spec.role} model; a judge must be a chat model")
    if spec.endpoint is not None:
        ep = spec.endpoint
        engine: Any = EndpointEngine(
            list(ep.base_urls),
            name=spec.name,
            model=ep.model,
            api_key=endpoint_api_key(spec.name, ep),
            timeout=ep.timeout,
            retries=ep.retries,
        )
        return Judge(
            engine, with_reason=with_reason, attempts=attempts, workers=ep.concurrency * len(ep.base_urls)
        )
    from overtonlite.sources import ensure_model
    from overtonlite.util import sha256_file

    path = ensure_model(spec, pull=True)
    sha = spec.file.sha256 or sha256_file(path)
    engine = LocalEngine(str(path), name=spec.name, model_sha256=sha, n_ctx=n_ctx, threads=threads)
    return Judge(engine, with_reason=with_reason, attempts=attempts, workers=1)
