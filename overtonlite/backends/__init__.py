"""Backends: one small interface for generators and one for embedders (see ``base``). Heavy imports are lazy.

:func:`open_generator` is the one place that turns a registry model into a generator: a local GGUF runs on the
llama.cpp engine, a served model (``[models.NAME.source] kind = "endpoint"``) on the OpenAI-compatible backend,
base models through ``/v1/completions`` (raw prompt, stop strings) and chat models through
``/v1/chat/completions`` (the server applies the chat template). :func:`open_embedder` does the same for embedders.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from overtonlite.errors import UsageError
from overtonlite.util import sha256_file

__all__ = ["endpoint_api_key", "open_embedder", "open_generator", "served_sha256"]


def served_sha256(model: str) -> str:
    """The stand-in for a served model's weights hash (a server does not expose it): the hash of its model id.

    It does not depend on the URLs, so a run resumes, and its samples are reused, when the same model is served
    from other or more endpoints."""
    return hashlib.sha256(f"openai:{model}".encode()).hexdigest()


def endpoint_api_key(name: str, endpoint: Any) -> str:
    """The key named by ``api_key_env`` ("" when the entry names none); UsageError when the variable is unset."""
    env = endpoint.api_key_env
    if not env:
        return ""
    key = os.environ.get(env, "")
    if not key:
        raise UsageError(f"{name}: the environment variable {env} (its api_key_env) is not set or empty")
    return key


def _resolve(spec_or_name: Any, registry: Any, kind: str) -> Any:
    if not isinstance(spec_or_name, str):
        return spec_or_name
    from overtonlite.registry import load_registry

    reg = registry or load_registry()
    return reg.model(spec_or_name) if kind == "model" else reg.embedder(spec_or_name)


def open_generator(
    spec_or_name: Any,
    *,
    registry: Any = None,
    n_ctx: int | None = None,
    threads: int | None = None,
    max_seqs: int | None = None,
    max_tokens: int | None = None,
    kv_layout: str | None = None,
    progress: Any = None,
    schedule: int | None = None,
) -> Any:
    """A :class:`~overtonlite.backends.base.Generator` for a registry model (a name or a ``ModelSpec``).

    Local GGUF: pulled into the cache if needed, then :class:`~overtonlite.backends.llamacpp.LlamaCppGenerator`
    (``n_ctx`` default 2048, ``threads`` default physical cores, ``max_seqs`` default from the machine's memory,
    ``max_tokens`` the longest sample that will be asked for, which sizes its KV cache; ``kv_layout`` "unified"
    (default) or "streams"). Served: an
    :class:`~overtonlite.backends.openai.OpenAIGenerator` over every ``base_urls`` entry with the entry's
    concurrency per URL, timeout and retries; chat mode follows the role; ``n_ctx`` defaults to the entry's
    ``context_length``, else what the server reports. The key comes only from the variable ``api_key_env`` names.
    A served model refuses ``max_seqs`` and ``kv_layout`` (UsageError): the server schedules its own batches.
    ``schedule``: the local engine's schedule version for a resumed run (see ``LlamaCppGenerator``; None: this
    version's); a served model has none and ignores it.
    """
    spec = _resolve(spec_or_name, registry, "model")
    if spec.endpoint is not None:
        from overtonlite.backends.openai import OpenAIGenerator

        if max_seqs is not None or kv_layout is not None:
            raise UsageError(
                f"model '{spec.name}' is served at {spec.endpoint.base_urls[0]}: the sequence budget and KV "
                "layout are the server's (set its concurrency in the registry entry instead)"
            )

        ep = spec.endpoint
        return OpenAIGenerator(
            list(ep.base_urls),
            model=ep.model,
            name=spec.name,
            api_key=endpoint_api_key(spec.name, ep),
            use_env_key=False,
            timeout=ep.timeout,
            retries=ep.retries,
            max_concurrency=ep.concurrency,
            chat=spec.role == "chat",
            model_sha256=served_sha256(ep.model),
            n_ctx=n_ctx or spec.context_length or None,
        )
    from overtonlite.backends.llamacpp import LlamaCppGenerator
    from overtonlite.sources import ensure_model

    path = Path(ensure_model(spec, pull=True, progress=progress))
    sha = spec.file.sha256 or sha256_file(path)
    kwargs: dict[str, Any] = {
        "name": spec.name,
        "model_sha256": sha,
        "n_ctx": n_ctx or 2048,
        "n_threads": threads,
    }
    if max_seqs is not None:
        kwargs["max_seqs"] = max_seqs
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if kv_layout is not None:
        kwargs["kv_layout"] = kv_layout
    if schedule is not None:
        kwargs["schedule"] = schedule
    return LlamaCppGenerator(path, **kwargs)


def open_embedder(
    spec_or_name: Any = None, *, registry: Any = None, cache: bool = True, threads: int | None = None
) -> Any:
    """An :class:`~overtonlite.backends.base.Embedder` for a registry embedder (default: the registry's default).

    Local: the ONNX embedder with its on-disk cache. Served: sentence vectors from ``/v1/embeddings``; token states
    (for BERTScore-style F1) are not available over that API, so they come from the registry's local default
    embedder, and ``describe()`` says so (see :class:`~overtonlite.backends.openai.embed.OpenAIEmbedder`).
    """
    from overtonlite.registry import load_registry

    reg = registry or load_registry()
    spec = _resolve(spec_or_name or reg.default_embedder, reg, "embedder")
    if spec.endpoint is None:
        from overtonlite.backends.onnx import open_default_embedder

        return open_default_embedder(spec.name, cache=cache, threads=threads)
    from overtonlite.backends.openai.embed import OpenAIEmbedder

    local = next(
        (
            e
            for e in (reg.embedders.get(reg.default_embedder), *reg.embedders.values())
            if e is not None and e.endpoint is None
        ),
        None,
    )

    def token_embedder() -> Any:
        if local is None:
            return None
        from overtonlite.backends.onnx import open_default_embedder

        return open_default_embedder(local.name, cache=cache, threads=threads)

    ep = spec.endpoint
    return OpenAIEmbedder(
        list(ep.base_urls),
        model=ep.model,
        name=spec.name,
        api_key=endpoint_api_key(spec.name, ep),
        timeout=ep.timeout,
        retries=ep.retries,
        max_concurrency=ep.concurrency,
        dim=spec.dim or None,
        calibration=spec.calibration,
        token_embedder=token_embedder if local is not None else None,
        token_embedder_name=local.name if local is not None else None,
    )
