"""Shared plumbing of the experiments: opening and checking a (base, chat) pair, the output directory,
``results.json`` and the cross-family banner."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite import schema
from overtonlite.backends.base import Generator
from overtonlite.errors import UsageError

RESULTS_FILE = schema.RESULTS_FILE
BASE, CHAT, URIAL = "base", "chat", "urial"


@dataclass
class PairInfo:
    """What the results and the report say about the pair. ``banner`` is set for cross-family pairs."""

    name: str
    base: str
    chat: str
    same_family: bool
    base_family: str | None = None
    chat_family: str | None = None
    note: str = ""

    @property
    def banner(self) -> str | None:
        """The visible warning every output of a cross-family pair carries (None for a same-family pair)."""
        if self.same_family:
            return None
        fams = ""
        if self.base_family and self.chat_family:
            fams = f" ({self.base_family} vs {self.chat_family})"
        return (
            f"family and alignment are confounded: the base model '{self.base}' and the chat model '{self.chat}' "
            f"come from different pretrained families{fams}, so every base-vs-chat difference mixes the effect of "
            "alignment with the effect of a different model; treat this run as a smoke test, not a replication"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "chat": self.chat,
            "same_family": self.same_family,
            "base_family": self.base_family,
            "chat_family": self.chat_family,
        }


@dataclass
class PairModels:
    """An opened pair: its description and the two generators (close them with :meth:`close`)."""

    info: PairInfo
    base: Generator
    chat: Generator
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for gen in (self.base, self.chat):
            try:
                gen.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def only_active(active: Generator, *waiting: Generator | None) -> None:
    """Free the KV caches of the ``waiting`` generators (those with a ``suspend`` method, and not ``active``
    itself) before ``active`` generates: a pair's two models hold only one cache at a time, which keeps the peak
    memory of a run near one model's needs. A suspended generator makes a new cache when it next generates."""
    for gen in waiting:
        suspend = getattr(gen, "suspend", None)
        if gen is not None and gen is not active and callable(suspend):
            suspend()


def check_pair(base: Generator, chat: Generator, *, base_name: str = "base", chat_name: str = "chat") -> None:
    """UsageError when the "chat" model has no chat template or the "base" model has one."""
    if not chat.has_chat_template():
        raise UsageError(
            f"the chat model '{chat_name}' has no chat template; a pair's chat side must be an instruct/chat model"
        )
    if base.has_chat_template():
        raise UsageError(
            f"the base model '{base_name}' has a chat template, so it looks aligned; a pair's base side must be a "
            "base (pretrained-only) model"
        )


def pair_info(pair: str | Any = "default", *, registry: Any = None) -> PairInfo:
    """The registry's description of a pair (name or PairSpec), with the two models' families."""
    from overtonlite.registry import load_registry

    reg = registry or load_registry()
    spec = reg.pair(pair) if isinstance(pair, str) else pair
    fam_b = fam_c = None
    try:
        fam_b, fam_c = reg.model(spec.base).family, reg.model(spec.chat).family
    except Exception:  # noqa: BLE001 - families are decoration
        pass
    return PairInfo(
        name=spec.name,
        base=spec.base,
        chat=spec.chat,
        same_family=bool(spec.same_family),
        base_family=fam_b,
        chat_family=fam_c,
        note=getattr(spec, "note", "") or "",
    )


def open_model(
    name: str,
    *,
    registry: Any = None,
    n_ctx: int = 2048,
    threads: int | None = None,
    max_tokens: int | None = None,
    max_seqs: int | None = None,
    kv_layout: str | None = None,
    schedule: int | None = None,
) -> Generator:
    """Open a registry model: a local GGUF on the llama.cpp engine (pulled into the cache if needed), a served one
    over its OpenAI-compatible endpoint (see :func:`overtonlite.backends.open_generator`; ``max_tokens``, the
    longest sample the run asks for, sizes the local engine's KV cache; ``max_seqs`` and ``kv_layout`` set the
    local engine's sequence budget and KV layout, ``schedule`` its schedule version for a resumed run, None for
    the defaults)."""
    from overtonlite.backends import open_generator

    return open_generator(
        name,
        registry=registry,
        n_ctx=n_ctx,
        threads=threads,
        max_tokens=max_tokens,
        max_seqs=max_seqs,
        kv_layout=kv_layout,
        schedule=schedule,
    )


def open_pair(
    pair: str | Any = "default",
    *,
    registry: Any = None,
    n_ctx: int = 2048,
    threads: int | None = None,
    max_tokens: int | None = None,
    kv_layout: str | None = None,
    schedule: int | None = None,
) -> PairModels:
    """Open both models of a pair (``kv_layout`` for both local engines, see :func:`open_model`) and check their
    roles (see :func:`check_pair`)."""
    info = pair_info(pair, registry=registry)
    kw = {
        "registry": registry,
        "n_ctx": n_ctx,
        "threads": threads,
        "max_tokens": max_tokens,
        "kv_layout": kv_layout,
        "schedule": schedule,
    }
    base = open_model(info.base, **kw)
    try:
        chat = open_model(info.chat, **kw)
    except BaseException:
        base.close()
        raise
    models = PairModels(info=info, base=base, chat=chat)
    try:
        check_pair(base, chat, base_name=info.base, chat_name=info.chat)
    except BaseException:
        models.close()
        raise
    return models


def ensure_writable(out: str | os.PathLike[str]) -> Path:
    """Check that files can be written to ``out``; UsageError with the reason if not. A missing ``out`` is not
    created here (the first write creates it), so a run that fails on its arguments leaves no empty directory."""
    path = Path(out).expanduser()
    if not path.exists():  # the nearest existing parent must be a writable directory
        probe = path.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise UsageError(f"cannot write to the output directory {path}: {probe} is not a directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write to the output directory {path}: {probe} is not writable")
        return path
    try:
        probe = path / ".overtonlite-write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to the output directory {path}: {exc.strerror or exc}") from None
    return path


def read_results(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The run directory's results.json ({} when there is none)."""
    return schema.read_results(Path(out)) or {}


def write_results(
    out: str | os.PathLike[str],
    *,
    pair: PairInfo | None,
    settings: dict[str, Any],
    claims: dict[str, dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge claims (and settings) into ``out/results.json`` and write it atomically (:func:`overtonlite.schema.
    write_results`); returns the new content.

    Claims already in the file and not given here are kept, so ``diversity`` and ``icl`` can share a directory.
    """
    path = Path(out)
    old = read_results(path)
    merged_claims = dict(old.get("claims") or {})
    merged_claims.update(claims)
    merged_settings = dict(old.get("settings") or {})
    for key, value in settings.items():
        prev = merged_settings.get(key)
        merged_settings[key] = (
            {**prev, **value} if isinstance(prev, dict) and isinstance(value, dict) else value
        )
    manifest = schema.read_manifest(path) or {}
    data: dict[str, Any] = {
        "pair": pair.to_dict() if pair is not None else old.get("pair"),
        "settings": merged_settings,
        "claims": merged_claims,
        "signature": manifest.get("signature") or old.get("signature"),
        "banner": pair.banner if pair is not None else old.get("banner"),
    }
    for key, value in old.items():
        if key not in data:
            data[key] = value
    data.update(extra or {})
    return schema.write_results(path / RESULTS_FILE, data)
