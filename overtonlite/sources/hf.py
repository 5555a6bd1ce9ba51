"""``hf`` sources: a file of a Hugging Face hub repository, through huggingface_hub and its own cache.

``HF_HUB_OFFLINE=1`` (or ``pull=False``) only looks in the cache. ``HF_HUB_CACHE`` / ``HF_HOME`` choose the cache
as huggingface_hub does. huggingface_hub is imported lazily.
"""

from __future__ import annotations

import os
from pathlib import Path

from overtonlite.errors import SourceError
from overtonlite.registry import FileSpec


def hf_cache_dir() -> str | None:
    """The hub cache folder from ``HF_HUB_CACHE`` / ``HF_HOME``; None for huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def hf_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` forbids contacting the hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hf_path(f: FileSpec, label: str, *, pull: bool) -> Path:
    """The local path of an ``hf`` file, downloading it when allowed; SourceError (one line) otherwise."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        from overtonlite.errors import missing_dependency

        raise missing_dependency("huggingface_hub") from None
    offline = hf_offline() or not pull
    try:
        p = hf_hub_download(
            repo_id=f.repo_id or "",
            filename=f.filename,
            revision=f.revision,
            cache_dir=hf_cache_dir(),
            local_files_only=offline,
        )
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, HTTP, OS); report one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        why = "it is not in the Hugging Face cache and the hub may not be contacted" if offline else first
        hint = "" if pull else f"; run: overtonlite models pull {label}"
        raise SourceError(f"{label}: cannot get {f.repo_id}/{f.filename}@{f.revision}: {why}{hint}") from None
    return Path(p)


def hf_cached_path(f: FileSpec) -> Path | None:
    """The file's path when it is already in the hub cache (no network), else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(f.repo_id or "", f.filename, cache_dir=hf_cache_dir(), revision=f.revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None
