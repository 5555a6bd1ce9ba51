"""Render a model's own chat template (the Jinja string in GGUF ``tokenizer.chat_template``).

The template is rendered in a sandbox (``ImmutableSandboxedEnvironment``) with the variables chat templates
expect: ``messages``, ``add_generation_prompt=True``, ``bos_token``, ``eos_token``, plus the helpers
``raise_exception(msg)`` and ``strftime_now(fmt)``. Whitespace handling follows the Hugging Face convention
(``trim_blocks`` and ``lstrip_blocks``), and ``tojson`` keeps non-ASCII characters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from overtonlite.errors import UsageError


def _raise(message: str) -> None:
    raise UsageError(f"chat template refused the messages: {message}")


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    try:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:  # pragma: no cover - jinja2 is a dependency
        from overtonlite.errors import missing_dependency

        raise missing_dependency("jinja2") from exc
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise UsageError(f"the model's chat template does not parse: {exc}") from exc


def check_messages(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Validate ``[{"role": ..., "content": ...}, ...]``; UsageError naming the bad message."""
    if not messages:
        raise UsageError("a chat prompt needs at least one message")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise UsageError(f"chat message {i} is not an object")
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise UsageError(f"chat message {i} needs string 'role' and 'content'")
        out.append(dict(msg))
    return out


def render_template(
    template: str,
    messages: Sequence[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render ``messages`` with a Jinja chat ``template``; errors become one-line UsageErrors."""
    from jinja2.exceptions import TemplateError

    compiled = _compile(template)
    try:
        return compiled.render(
            messages=check_messages(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except TemplateError as exc:
        raise UsageError(f"the model's chat template failed: {exc}") from exc
