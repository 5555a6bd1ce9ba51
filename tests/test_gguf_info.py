"""The self-written GGUF header reader, checked against the `gguf` package's own reader."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from overtonlite.errors import ModelLoadError
from overtonlite.gguf_info import gguf_summary, read_gguf_metadata, validate_gguf
from tests.registry_fakes import write_tiny_gguf

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", n_vocab=100, chat_template=TEMPLATE)


def test_metadata_matches_gguf_reader(tiny: Path) -> None:
    import gguf

    md = read_gguf_metadata(tiny)
    assert md["general.architecture"] == "llama"
    assert md["general.name"] == "tiny test model"
    assert md["llama.context_length"] == 256
    assert md["tokenizer.chat_template"] == TEMPLATE
    # a long array is summarised, not loaded
    assert md["tokenizer.ggml.tokens"] == {"type": "array", "element_type": "STRING", "length": 100}
    ref = gguf.GGUFReader(str(tiny))
    assert md["gguf.tensor_count"] == len(ref.tensors) == 2
    assert md["gguf.version"] == 3
    assert set(ref.fields) >= {k for k in md if not k.startswith("gguf.")}


def test_summary(tiny: Path) -> None:
    s = gguf_summary(tiny)
    assert s["architecture"] == "llama"
    assert s["parameters"] == 100 * 8 + 8
    assert s["context_length"] == 256
    assert (s["file_type"], s["quant"]) == (0, "F32")
    assert s["has_chat_template"] is True
    assert s["chat_template_sha256"] == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    assert s["vocab_size"] == 100
    assert s["file_size"] == tiny.stat().st_size


def test_no_template(tmp_path: Path) -> None:
    s = gguf_summary(write_tiny_gguf(tmp_path / "base.gguf", n_vocab=10, chat_template=None))
    assert s["has_chat_template"] is False and s["chat_template_sha256"] is None
    assert s["vocab_size"] == 10


def test_truncated_tensor_data(tiny: Path, tmp_path: Path) -> None:
    data = tiny.read_bytes()
    short = tmp_path / "short.gguf"
    short.write_bytes(data[:-16])  # header intact, tensor data cut
    read_gguf_metadata(short)  # the header alone still reads
    with pytest.raises(
        ModelLoadError, match=r"truncated GGUF file: \d+ bytes, but its tensors need \d+ bytes"
    ):
        validate_gguf(short)
    with pytest.raises(ModelLoadError, match="truncated"):
        gguf_summary(short)
    validate_gguf(tiny)


def test_truncated_header(tiny: Path, tmp_path: Path) -> None:
    short = tmp_path / "header.gguf"
    short.write_bytes(tiny.read_bytes()[:200])
    with pytest.raises(ModelLoadError, match="not a valid GGUF file"):
        validate_gguf(short)


def test_bad_magic_and_version(tiny: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + tiny.read_bytes()[4:])
    with pytest.raises(ModelLoadError, match="bad magic"):
        validate_gguf(bad)
    old = tmp_path / "old.gguf"
    old.write_bytes(b"GGUF" + struct.pack("<I", 1) + tiny.read_bytes()[8:])
    with pytest.raises(ModelLoadError, match="unsupported GGUF version 1"):
        validate_gguf(old)
    with pytest.raises(ModelLoadError, match="cannot open"):
        validate_gguf(tmp_path / "missing.gguf")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="bad magic"):
        validate_gguf(empty)


@pytest.mark.realmodel
def test_real_default_models(default_base_path: Path, default_chat_path: Path) -> None:
    base = gguf_summary(default_base_path)
    assert (base["architecture"], base["quant"], base["has_chat_template"]) == ("gemma3", "Q4_K_M", False)
    chat = gguf_summary(default_chat_path)
    assert (chat["architecture"], chat["quant"], chat["has_chat_template"]) == ("llama", "Q4_1", True)
    # the parameter count agrees with gguf.GGUFReader's sum of tensor element counts (measured once)
    assert chat["parameters"] == 134_515_008 and base["parameters"] == 268_098_176
    assert chat["vocab_size"] == 49152
