"""``manifest.json``: what produced a run directory, and a one-line signature of it.

The manifest records the overtonlite version, the git revision of the package's checkout when there is one, the
Python version and platform, versions of the packages that shape results, and one entry per system: model, model
sha256, full sampling config, seed, N, prompt mode and the backend's own description. Several systems may share a
run directory; their entries are merged. A system that is already in the manifest can only be resumed with the
same settings: mixing two configurations under one system name is refused.

The signature is one line that a report can print, e.g.::

    overtonlite 0.1.0 | gemma-3-270m@a5fd3b62 smollm2-135m-instruct@b179c952 | n=5 T=0.5 rp=1.1 top_p=off
    top_k=off max_tokens=256 | seed=0 | cfg:1a2b3c4d
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from overtonlite import __version__
from overtonlite.config import stable_hash
from overtonlite.errors import UsageError, io_error
from overtonlite.util import write_json_atomic

# module name -> distribution name
TRACKED_PACKAGES: dict[str, str] = {
    "llama_cpp": "llama-cpp-python",
    "onnxruntime": "onnxruntime",
    "fastembed": "fastembed",
    "numpy": "numpy",
    "click": "click",
    "rich": "rich",
    "huggingface_hub": "huggingface-hub",
    "nltk": "nltk",
}

# the settings that must match for a system to be resumed in the same directory
CONFIG_FIELDS = ("model_sha256", "config", "seed", "n", "mode", "engine")


def utc_now() -> str:
    """The current UTC time as an ISO-8601 string with seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """``git rev-parse HEAD`` of the checkout the package was imported from, or None (installed wheel, no git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and len(rev) >= 7 else None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (None when not installed)."""
    versions: dict[str, str | None] = {}
    for module, dist in TRACKED_PACKAGES.items():
        try:
            versions[module] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[module] = None
    return versions


def environment() -> dict[str, Any]:
    """The run-independent part of a manifest."""
    return {
        "overtonlite_version": __version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The manifest at ``path`` (a file or a run directory), or None when there is none
    (:func:`overtonlite.schema.read_manifest`)."""
    from overtonlite.schema import read_manifest as read

    return read(path)


def recorded_engine(out: str | Path, system: str) -> tuple[int | None, str | None]:
    """The llama.cpp sequence budget and KV layout ``system`` was sampled with in run directory ``out`` (None
    where not recorded; a run from before the layouts existed had the unified cache)."""
    try:
        entry = ((read_manifest(out) or {}).get("systems") or {}).get(system) or {}
    except Exception:  # noqa: BLE001 - an unreadable manifest is reported by the run itself
        return None, None
    return _engine_facts(entry)


def _engine_facts(entry: dict[str, Any]) -> tuple[int | None, str | None]:
    engine = entry.get("engine") or {}
    value = engine.get("max_seqs")
    seqs = int(value) if isinstance(value, int) and value >= 1 else None
    layout = engine.get("kv_layout")
    if layout not in ("unified", "streams"):
        layout = "unified" if engine.get("kv_unified") is True else None
    return seqs, layout


def recorded_schedule(out: str | Path, system: str | None = None) -> int | None:
    """The llama.cpp engine's schedule version (``engine.schedule``) ``system`` was sampled with in run directory
    ``out``, or with ``system=None`` the oldest one among its systems; None where none is recorded. A resumed run
    passes it on, so it keeps the texts of the version that started it (see ``SCHEDULES``)."""
    try:
        systems = (read_manifest(out) or {}).get("systems") or {}
    except Exception:  # noqa: BLE001 - an unreadable manifest is reported by the run itself
        return None
    entries = [systems.get(system)] if system is not None else list(systems.values())
    found = [
        e["engine"]["schedule"]
        for e in entries
        if isinstance(e, dict)
        and isinstance(e.get("engine"), dict)
        and isinstance(e["engine"].get("schedule"), int)
    ]
    return min(found) if found else None


def recorded_layout(out: str | Path) -> str | None:
    """The KV layout the llama.cpp systems of run directory ``out`` were sampled with: "streams" when they all
    were, None when none was (the unified cache, the default, or nothing sampled yet). UsageError when the
    directory mixes the two, since no single layout could resume it."""
    try:
        systems = (read_manifest(out) or {}).get("systems") or {}
    except Exception:  # noqa: BLE001 - an unreadable manifest is reported by the run itself
        return None
    layouts = {
        name: _engine_facts(entry)[1] or "unified"
        for name, entry in systems.items()
        if isinstance(entry, dict) and isinstance(entry.get("engine"), dict)
    }
    if "streams" not in layouts.values():
        return None
    unified = sorted(name for name, layout in layouts.items() if layout != "streams")
    if unified:
        raise UsageError(
            f"{out} holds systems sampled with the streams KV layout and others with the unified one "
            f"({', '.join(unified)}); resume them one by one with `sample --kv-layout`"
        )
    return "streams"


def check_system(manifest: dict[str, Any] | None, system: str, entry: dict[str, Any], *, where: str) -> None:
    """UsageError when ``system`` is already in ``manifest`` with settings that differ from ``entry``."""
    if not manifest:
        return
    old = manifest.get("systems", {}).get(system)
    if not old:
        return
    diffs = []
    for key in CONFIG_FIELDS:
        if key in ("config", "engine"):  # engine: the generator's schedule settings (llama.cpp), if any
            a, b = old.get(key) or {}, entry.get(key) or {}
            diffs += [
                f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
            ]
        elif old.get(key) != entry.get(key):
            diffs.append(f"{key}: {old.get(key)!r} -> {entry.get(key)!r}")
    if diffs:
        raise UsageError(
            f"system {system!r} in {where} was sampled with other settings ({'; '.join(diffs)}); "
            "use another --out or --system instead of mixing them"
        )


def update_manifest(path: str | Path, system: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Merge ``entry`` for ``system`` into the manifest at ``path`` (a run dir or file) and write it atomically.

    Raises UsageError when the system is already there with different settings. Returns the new manifest.
    """
    p = _manifest_file(path)
    old = read_manifest(p)
    check_system(old, system, entry, where=str(p.parent))
    now = utc_now()
    manifest: dict[str, Any] = dict(old or {})
    manifest.update(environment())
    manifest.setdefault("created", now)
    manifest["updated"] = now
    systems = dict(manifest.get("systems") or {})
    previous = systems.get(system)
    systems[system] = {k: v if k == "config" else portable(v) for k, v in entry.items()}  # no home paths
    if isinstance(previous, dict) and "passes" in previous and "passes" not in entry:
        systems[system]["passes"] = previous["passes"]  # a resumed system keeps the record of earlier passes
    manifest["systems"] = systems
    manifest["signature"] = signature(manifest)
    return _write(p, manifest, kept="the previous manifest and samples are unchanged")


def _manifest_file(path: str | Path) -> Path:
    """manifest.json of a run directory, or the file itself."""
    p = Path(path)
    return p / "manifest.json" if p.is_dir() or not p.suffix else p


def _write(p: Path, manifest: dict[str, Any], *, kept: str) -> dict[str, Any]:
    from overtonlite.schema import write_manifest

    try:
        return write_manifest(p, manifest)
    except OSError as exc:
        raise io_error(exc, p, kept=kept) from None


def record_pass(path: str | Path, system: str, record: dict[str, Any]) -> None:
    """Append one sampling pass's record (time, groups, tokens, the engine's step statistics) to
    ``systems.SYSTEM.passes`` of the manifest at ``path``, which :func:`update_manifest` registered. Facts about
    how fast a run went, not settings: they take no part in the settings check or the signature."""
    p = _manifest_file(path)
    manifest = read_manifest(p)
    entry = ((manifest or {}).get("systems") or {}).get(system)
    if not isinstance(entry, dict):
        return
    assert manifest is not None
    entry["passes"] = [*(entry.get("passes") or []), record]
    manifest["updated"] = utc_now()
    _write(p, manifest, kept="the samples are written; only this pass's timing is not recorded")


def portable_path(path: str | Path) -> str:
    """A path as an output file may record it: under ``$OVERTONLITE_HOME`` (the model cache) as
    ``$OVERTONLITE_HOME/models/x.gguf``, under the user's home as ``~/...``, anything else unchanged."""
    from overtonlite.sources.store import cache_home

    text = str(path)
    if not os.path.isabs(text):
        return text
    p = Path(os.path.normpath(text))
    for root, name in ((cache_home(), "$OVERTONLITE_HOME"), (Path.home(), "~")):
        for base in dict.fromkeys((Path(os.path.normpath(root)), _resolved(root))):
            try:
                rel = p.relative_to(base)
            except ValueError:
                continue
            return name if str(rel) == "." else f"{name}/{rel.as_posix()}"
    return text


def portable(value: Any) -> Any:
    """``value`` with every absolute path string made :func:`portable_path` (dicts and lists walked)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if isinstance(value, Path) or (isinstance(value, str) and value.startswith("/")):
        return portable_path(value)
    return value


def _resolved(root: Path) -> Path:
    try:
        return root.resolve()
    except OSError:
        return root


def signature(manifest: dict[str, Any]) -> str:
    """One line: version | system@sha8 ... | sampling settings | seed | cfg:hash of all system configs."""
    systems: dict[str, Any] = manifest.get("systems") or {}
    names = " ".join(f"{name}@{(e.get('model_sha256') or 'nosha')[:8]}" for name, e in systems.items())
    settings = []
    seeds = []
    for e in systems.values():
        s = _settings_text(e)
        if s not in settings:
            settings.append(s)
        seed = f"seed={e.get('seed')}"
        if seed not in seeds:
            seeds.append(seed)
    cfg = stable_hash({name: {k: e.get(k) for k in CONFIG_FIELDS} for name, e in sorted(systems.items())}, 8)
    version = manifest.get("overtonlite_version", __version__)
    return f"overtonlite {version} | {names or '-'} | {' / '.join(settings) or '-'} | {' / '.join(seeds) or '-'} | cfg:{cfg}"


def _settings_text(entry: dict[str, Any]) -> str:
    c = entry.get("config") or {}
    parts = [
        f"n={entry.get('n')}",
        f"T={_num(c.get('temperature'))}",
        f"rp={_num(c.get('repetition_penalty'))}",
    ]
    top_p = c.get("top_p", 1.0)
    parts.append("top_p=off" if top_p in (None, 1, 1.0) else f"top_p={_num(top_p)}")
    top_k = c.get("top_k", 0)
    parts.append("top_k=off" if not top_k else f"top_k={top_k}")
    if c.get("min_p"):
        parts.append(f"min_p={_num(c['min_p'])}")
    parts.append(f"max_tokens={c.get('max_tokens')}")
    return " ".join(parts)


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


__all__ = [
    "check_system",
    "environment",
    "git_revision",
    "package_versions",
    "portable",
    "portable_path",
    "read_manifest",
    "record_pass",
    "recorded_schedule",
    "signature",
    "update_manifest",
    "utc_now",
    "write_json_atomic",
]
