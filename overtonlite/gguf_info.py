"""A small GGUF header reader (no third-party dependency).

It reads the key/value metadata and the tensor table of a GGUF v2/v3 file and checks that the file is long enough
to hold the tensor data it declares, so a truncated download is caught before llama.cpp sees it. Long arrays (the
tokenizer vocabulary, merges, scores) are not loaded: they are returned as ``{"type": "array", "element_type":
..., "length": n}``.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from overtonlite.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_INLINE_ARRAY = 64  # arrays longer than this are summarised, not loaded

# GGUF value types: id -> (name, struct format or None for variable length)
_VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("UINT8", "<B"), 1: ("INT8", "<b"), 2: ("UINT16", "<H"), 3: ("INT16", "<h"),
    4: ("UINT32", "<I"), 5: ("INT32", "<i"), 6: ("FLOAT32", "<f"), 7: ("BOOL", "<?"),
    8: ("STRING", None), 9: ("ARRAY", None), 10: ("UINT64", "<Q"), 11: ("INT64", "<q"),
    12: ("FLOAT64", "<d"),
}  # fmt: skip

# ggml tensor types: id -> (name, elements per block, bytes per block)
_TENSOR_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}  # fmt: skip

# llama.cpp file types (general.file_type)
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}  # fmt: skip


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int  # relative to the start of the data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int | None:
        """Size of the tensor's data, or None for a tensor type this reader does not know."""
        t = _TENSOR_TYPES.get(self.type_id)
        if t is None:
            return None
        _, block, size = t
        return (self.n_elements + block - 1) // block * size


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    file_size: int = 0

    @property
    def required_size(self) -> int:
        """Bytes the file must have to hold all declared tensor data (lower bound for unknown tensor types)."""
        end = self.data_offset
        for t in self.tensors:
            end = max(end, self.data_offset + t.offset + (t.n_bytes or 0))
        return end


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path, size: int) -> None:
        self.fh = fh
        self.path = path
        self.size = size

    def bad(self, reason: str) -> ModelLoadError:
        return ModelLoadError(f"{self.path}: not a valid GGUF file: {reason}")

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise self.bad(f"unexpected end of file in the header at byte {self.fh.tell()} (truncated?)")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string_length(self) -> int:
        n = self.unpack("<Q")
        if n > self.size - self.fh.tell():
            raise self.bad(
                f"string of {n} bytes at byte {self.fh.tell()} runs past the end of the file (truncated?)"
            )
        return n

    def string(self) -> str:
        return self.read(self.string_length()).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.fh.seek(self.string_length(), os.SEEK_CUR)

    def value(self, type_id: int) -> Any:
        if type_id not in _VALUE_TYPES:
            raise self.bad(f"unknown metadata value type {type_id} at byte {self.fh.tell()}")
        name, fmt = _VALUE_TYPES[type_id]
        if fmt is not None:
            return self.unpack(fmt)
        if name == "STRING":
            return self.string()
        elem_type = self.unpack("<I")
        count = self.unpack("<Q")
        if elem_type not in _VALUE_TYPES:
            raise self.bad(f"unknown array element type {elem_type}")
        elem_name, elem_fmt = _VALUE_TYPES[elem_type]
        if count <= MAX_INLINE_ARRAY:
            return [self.value(elem_type) for _ in range(count)]
        if elem_fmt is not None:
            nbytes = count * struct.calcsize(elem_fmt)
            if nbytes > self.size - self.fh.tell():
                raise self.bad(f"array of {count} elements runs past the end of the file (truncated?)")
            self.fh.seek(nbytes, os.SEEK_CUR)
        elif elem_name == "STRING":
            for _ in range(count):
                self.skip_string()
        else:
            for _ in range(count):
                self.value(elem_type)
        return {"type": "array", "element_type": elem_name, "length": count}


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """Parse magic, version, metadata and tensor table. Raises :class:`ModelLoadError` on any malformation."""
    p = Path(path)
    try:
        size = p.stat().st_size
        fh = open(p, "rb")
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot open: {exc.strerror or exc}") from None
    with fh:
        r = _Reader(fh, p, size)
        magic = fh.read(4)
        if magic != GGUF_MAGIC:
            raise r.bad(f"bad magic {magic!r} (expected b'GGUF')")
        version = r.unpack("<I")
        if version not in SUPPORTED_VERSIONS:
            raise ModelLoadError(f"{p}: unsupported GGUF version {version} (supported: 2, 3)")
        n_tensors = r.unpack("<Q")
        n_kv = r.unpack("<Q")
        if n_tensors > size or n_kv > size:
            raise r.bad(f"implausible counts ({n_tensors} tensors, {n_kv} metadata keys)")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = r.value(r.unpack("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.unpack("<I")
            if n_dims > 8:
                raise r.bad(f"tensor {name!r} has {n_dims} dimensions")
            shape = tuple(r.unpack("<Q") for _ in range(n_dims))
            tensors.append(TensorInfo(name, shape, r.unpack("<I"), r.unpack("<Q")))
        align = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(align, int) or align <= 0:
            align = DEFAULT_ALIGNMENT
        pos = fh.tell()
        data_offset = (pos + align - 1) // align * align
    return GGUFHeader(p, version, metadata, tensors, data_offset, size)


def validate_gguf(path: str | Path) -> GGUFHeader:
    """Check that ``path`` is a complete GGUF file; raises :class:`ModelLoadError` (bad magic, unsupported
    version, corrupt header, or shorter than the tensor data it declares)."""
    header = read_gguf_header(path)
    need = header.required_size
    if header.file_size < need:
        raise ModelLoadError(
            f"{header.path}: truncated GGUF file: {header.file_size} bytes, but its tensors need {need} bytes"
        )
    return header


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file, plus ``gguf.version``, ``gguf.tensor_count`` and
    ``gguf.kv_count``. Long arrays are summarised as ``{"type": "array", "element_type", "length"}``."""
    header = read_gguf_header(path)
    out = dict(header.metadata)
    out["gguf.version"] = header.version
    out["gguf.tensor_count"] = len(header.tensors)
    out["gguf.kv_count"] = len(header.metadata)
    return out


def _array_length(value: Any) -> int | None:
    if isinstance(value, dict) and value.get("type") == "array":
        return int(value["length"])
    if isinstance(value, list):
        return len(value)
    return None


def gguf_summary(path: str | Path) -> dict[str, Any]:
    """What ``models info`` shows: architecture, name, parameter count, context length, quantisation, chat
    template (present? sha256), vocabulary size, tensor count and file size. Validates the file first."""
    h = validate_gguf(path)
    md = h.metadata
    arch = md.get("general.architecture")
    template = md.get("tokenizer.chat_template")
    ftype = md.get("general.file_type")
    vocab = _array_length(md.get("tokenizer.ggml.tokens"))
    if vocab is None and arch:
        vocab = md.get(f"{arch}.vocab_size")
    return {
        "architecture": arch,
        "name": md.get("general.name"),
        "parameters": sum(t.n_elements for t in h.tensors),
        "context_length": md.get(f"{arch}.context_length") if arch else None,
        "file_type": ftype,
        "quant": FILE_TYPES.get(ftype) if isinstance(ftype, int) else None,
        "has_chat_template": isinstance(template, str) and bool(template),
        "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest()
        if isinstance(template, str)
        else None,
        "vocab_size": vocab,
        "licence": md.get("general.license"),
        "tensor_count": len(h.tensors),
        "gguf_version": h.version,
        "file_size": h.file_size,
    }
