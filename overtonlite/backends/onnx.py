"""Sentence and token embeddings from a local ONNX encoder folder, fully offline.

The folder holds ``model.onnx`` (a BERT-style encoder whose first output is the last hidden state),
``tokenizer.json`` and ``tokenizer_config.json`` (``special_tokens_map.json`` and ``config.json`` optional), as
assembled by :func:`overtonlite.sources.ensure_embedder`.

How the model is run: the folder is loaded through fastembed (``TextEmbedding`` with ``specific_model_path``; a
local model name is registered with ``add_custom_model``), so fastembed's tokenizer set-up and onnxruntime session
options are used. Embedding itself then calls that session and that tokenizer directly, because fastembed's own
``embed`` returns only pooled vectors: one forward pass per batch gives the last hidden state, from which both the
mean-pooled, L2-normalised sentence vector and the per-token states (without CLS, SEP and padding) are taken. When
fastembed is not installed, the same is done with onnxruntime and tokenizers directly (identical vectors).

Texts are sorted by token length, cut at ``max_length`` tokens and run in batches of ``batch_size`` (default 8:
on 900 answers of a full ``replicate`` run, 2 threads, cold cache, batches of 8 took 44 s and 0.9 GB peak RSS
against 55 s and 1.9 GB for batches of 32, whose attention buffers grow onnxruntime's memory arena). Results are
cached by ``sha256(model id + text)`` in memory and, with ``cache_dir``, on disk (``.npz`` shards), so no text is
embedded twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from overtonlite.errors import ModelLoadError, missing_dependency
from overtonlite.util import physical_cores

DEFAULT_BATCH_SIZE = 8  # texts per forward pass (see the module docstring)

REQUIRED_FILES = ("model.onnx", "tokenizer.json", "tokenizer_config.json")


def text_key(model_id: str, text: str) -> str:
    """Cache key of one text for one model."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


class OnnxEmbedder:
    """An :class:`overtonlite.backends.base.Embedder` over a local ONNX encoder folder.

    ``name`` is the model id used in cache keys and outputs. ``threads`` defaults to the number of physical cores.
    ``cache_dir``: a folder for this model's on-disk cache (``None``: memory only).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        name: str,
        threads: int | None = None,
        max_length: int = 256,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_dir: str | Path | None = None,
        onnx_file: str = "model.onnx",
        token_output: str | None = None,
        calibration: Any = None,
    ) -> None:
        self.folder = Path(folder)
        # registry Calibration (thresholds on this model's cosine scale) or None
        self.calibration = calibration
        self.name = name
        self.model_id = f"{name}|onnx={onnx_file}|max_length={int(max_length)}"
        self.threads = threads or physical_cores()
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.onnx_file = onnx_file
        self.token_output = token_output
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        missing = [f for f in (onnx_file, *REQUIRED_FILES[1:]) if not (self.folder / f).is_file()]
        if missing:
            raise ModelLoadError(f"embedder folder {self.folder} lacks {', '.join(missing)}")
        self._session: Any = None
        self._tokenizer: Any = None
        self._counter: Any = None
        self._loader = ""
        self.dim = 0
        self._vecs: dict[str, np.ndarray] = {}
        self._toks: dict[str, np.ndarray] = {}
        self._counts: dict[str, int] = {}  # text key -> count_tokens(), noted while embedding
        self._index: dict[str, list[tuple[Path, int]]] | None = None  # on-disk cache: key -> (shard, row)
        self.n_embedded = 0  # texts that went through the model (cache misses)

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        if self._session is not None:
            return
        try:
            self._load_fastembed()
            self._loader = "fastembed"
        except ImportError:
            self._load_direct()
            self._loader = "onnxruntime"
        tok = self._tokenizer
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_length)
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_str(tok.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        outputs = self._session.get_outputs()
        if self.token_output is None:
            rank3 = [o for o in outputs if len(o.shape) == 3 and "float" in o.type]
            if not rank3:
                raise ModelLoadError(f"{self.folder / self.onnx_file} has no [batch, seq, dim] float output")
            out = rank3[0]
        else:
            named = [o for o in outputs if o.name == self.token_output]
            if not named:
                raise ModelLoadError(
                    f"{self.folder / self.onnx_file} has no output named {self.token_output!r}"
                )
            out = named[0]
        self._output_name = out.name
        self._input_names = {i.name for i in self._session.get_inputs()}
        self.dim = int(out.shape[-1]) if isinstance(out.shape[-1], int) else 0
        if not self.dim:
            self.dim = int(self._forward(self._tokenizer.encode_batch(["probe"]), False)[0][0].shape[-1])

    def _load_fastembed(self) -> None:
        from fastembed import TextEmbedding  # ImportError -> direct loading
        from fastembed.common.model_description import ModelSource, PoolingType

        local_name = f"overtonlite-local/{self.name}"
        known = {d["model"] for d in TextEmbedding.list_supported_models()}
        try:
            if local_name not in known:
                TextEmbedding.add_custom_model(
                    model=local_name,
                    pooling=PoolingType.MEAN,
                    normalization=True,
                    sources=ModelSource(hf=local_name),
                    dim=384,  # informational for fastembed only; the real width is read from the graph
                    model_file=self.onnx_file,
                )
            fe = TextEmbedding(local_name, specific_model_path=str(self.folder), threads=self.threads)
        except Exception as exc:  # fastembed raises plain exceptions for broken folders
            raise ModelLoadError(f"cannot load the embedder in {self.folder}: {exc}") from exc
        inner = fe.model
        self._session = inner.model
        self._tokenizer = inner.tokenizer
        if self._session is None or self._tokenizer is None:
            raise ModelLoadError(f"fastembed did not open a session for {self.folder}")

    def _load_direct(self) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise missing_dependency("onnxruntime") from exc
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = self.threads
        try:
            self._session = ort.InferenceSession(
                str(self.folder / self.onnx_file), sess_options=so, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        except Exception as exc:
            raise ModelLoadError(f"cannot load the embedder in {self.folder}: {exc}") from exc

    # ------------------------------------------------------------------ model
    def _forward(self, enc: list[Any], with_tokens: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """One forward pass over one batch of encodings: (normalised mean vector, token states or None) per text."""
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), dtype=np.int64)
        mask = np.zeros((len(enc), width), dtype=np.int64)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(
            [self._output_name], {k: v for k, v in feed.items() if k in self._input_names}
        )[0]
        hidden = hidden.astype(np.float32, copy=False)
        out = []
        for i, e in enumerate(enc):
            n = len(e.ids)
            states = hidden[i, :n]
            vec = states.mean(axis=0)
            norm = float(np.linalg.norm(vec))
            vec = vec / norm if norm > 0 else vec
            if with_tokens:
                special = np.asarray(e.special_tokens_mask[:n], dtype=bool)
                out.append((vec.astype(np.float32), states[~special].copy()))
            else:
                out.append((vec.astype(np.float32), None))
        return out

    def _compute(self, texts: list[str], keys: list[str], with_tokens: bool) -> None:
        self._load()
        encodings = self._tokenizer.encode_batch(texts)
        self._note_counts(keys, encodings)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        new_keys: list[str] = []
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self._forward([encodings[i] for i in chunk], with_tokens)
            for i, (vec, toks) in zip(chunk, batch, strict=True):
                self._vecs[keys[i]] = vec
                if toks is not None:
                    self._toks[keys[i]] = toks.astype(np.float16)
                new_keys.append(keys[i])
        self.n_embedded += len(texts)
        if self.cache_dir is not None and new_keys:
            self._save_shard(new_keys, with_tokens)

    # ------------------------------------------------------------------ disk cache
    def _model_cache(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / hashlib.sha256(self.model_id.encode()).hexdigest()[:16]

    def _disk_index(self) -> dict[str, list[tuple[Path, int]]]:
        """Text key -> (shard, row) of every on-disk copy; built once, from the shards' key lists only."""
        if self._index is None:
            self._index = {}
            folder = self._model_cache()
            shards = sorted(folder.glob("*.npz")) if folder is not None and folder.is_dir() else []
            for shard in shards:
                if shard.name.endswith(".tmp.npz"):
                    continue
                try:
                    with np.load(shard, allow_pickle=False) as z:
                        keys = [str(k) for k in z["keys"]]
                except (OSError, ValueError, KeyError):
                    continue  # a broken shard is ignored; its texts are embedded again
                for row, k in enumerate(keys):
                    self._index.setdefault(k, []).append((shard, row))
        return self._index

    def _load_disk(self, keys: Sequence[str], with_tokens: bool) -> None:
        """Read from the on-disk shards only the given texts that are not in memory yet (vectors, and token
        states when ``with_tokens``), so a large shared cache costs memory only for the texts a run uses."""
        index = self._disk_index()
        wanted: dict[Path, dict[int, str]] = {}
        for k in keys:
            if k in self._vecs and (not with_tokens or k in self._toks):
                continue
            for shard, row in index.get(k, ()):
                if not with_tokens or shard.name.endswith(".t.npz"):
                    wanted.setdefault(shard, {})[row] = k
                    break
        for shard, rows in wanted.items():
            try:
                with np.load(shard, allow_pickle=False) as z:
                    vecs = z["vecs"]
                    offs, toks = (z["tok_offsets"], z["toks"]) if with_tokens else (None, None)
                    for row, k in rows.items():
                        self._vecs.setdefault(k, vecs[row].astype(np.float32))
                        if offs is not None:
                            self._toks.setdefault(k, toks[offs[row] : offs[row + 1]].copy())
            except (OSError, ValueError, KeyError):
                continue  # a broken shard is ignored; its texts are embedded again

    def _save_shard(self, keys: list[str], with_tokens: bool) -> None:
        folder = self._model_cache()
        assert folder is not None
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "keys": np.array(keys),
            "vecs": np.stack([self._vecs[k] for k in keys]),
        }
        if with_tokens:
            toks = [self._toks[k] for k in keys]
            arrays["tok_offsets"] = np.cumsum([0] + [len(t) for t in toks])
            arrays["toks"] = np.concatenate(toks) if toks else np.zeros((0, self.dim), np.float16)
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20] + (".t" if with_tokens else "")
        tmp = folder / f"{name}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, folder / f"{name}.npz")

    # ------------------------------------------------------------------ public API
    def _ensure(self, texts: Sequence[str], with_tokens: bool) -> list[str]:
        keys = [text_key(self.model_id, t) for t in texts]
        if self.cache_dir is not None:
            self._load_disk(keys, with_tokens)
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in self._vecs or (with_tokens and k not in self._toks):
                todo.setdefault(k, t)
        if todo:
            self._compute(list(todo.values()), list(todo.keys()), with_tokens)
        return keys

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence vectors, shape (len(texts), dim), float32. Empty input -> shape (0, dim)."""
        texts = [str(t) for t in texts]
        keys = self._ensure(texts, with_tokens=False)
        if not keys:
            self._load()
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vecs[k] for k in keys])

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Sentence vectors and, from the same forward pass, per-text token states (no CLS/SEP/padding).

        Token states are float32 arrays of shape (n_tokens, dim); an empty text has shape (0, dim).
        """
        texts = [str(t) for t in texts]
        keys = self._ensure(texts, with_tokens=True)
        if not keys:
            self._load()
            return np.zeros((0, self.dim), dtype=np.float32), []
        return np.stack([self._vecs[k] for k in keys]), [self._toks[k].astype(np.float32) for k in keys]

    def release_token_states(self) -> None:
        """Forget the token states held in memory (float16, one row per token of every text embedded with
        tokens: the largest thing an embedder holds). The on-disk cache keeps its copy; a later
        :meth:`embed_with_tokens` reloads or recomputes them."""
        self._toks.clear()

    def _note_counts(self, keys: Sequence[str], encodings: Sequence[Any]) -> None:
        """Note :meth:`count_tokens` of texts just encoded for the model, so scoring need not tokenize them again.

        The model's tokenizer truncates without stride, so a text's tokens are those of its encoding and of its
        overflowing pieces, each piece with the post-processor's special tokens added (CLS and SEP for BERT);
        a special token written in the text itself is counted, as :meth:`count_tokens` counts it (tested against
        the untruncated tokenizer on the 2,743 LIMA-OE responses of the authors' data: no difference)."""
        trunc = self._tokenizer.truncation
        if trunc is not None and trunc.get("stride", 0) != 0:
            return
        added = self._tokenizer.num_special_tokens_to_add(False)
        for key, enc in zip(keys, encodings, strict=True):
            pieces = (enc, *enc.overflowing)
            self._counts[key] = sum(len(p.ids) for p in pieces) - added * len(pieces)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokenizer tokens per text, without special tokens and without truncation."""
        self._load()
        if not texts:
            return []
        keys = [text_key(self.model_id, t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._counts}
        if todo:
            counted = self._counter.encode_batch(list(todo.values()), add_special_tokens=False)
            for k, enc in zip(todo, counted, strict=True):
                self._counts[k] = len(enc.ids)
        return [self._counts[k] for k in keys]

    def describe(self) -> dict[str, Any]:
        """Identity of the embedder for summaries and manifests (no timings: output must be reproducible)."""
        self._load()
        onnx_path = self.folder / self.onnx_file
        return {
            "name": self.name,
            "loader": self._loader,
            "onnx_file": self.onnx_file,
            "token_output": self._output_name,
            "onnx_bytes": onnx_path.stat().st_size,
            "dim": self.dim,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "pooling": "mean",
            "normalize": True,
        }


def open_default_embedder(
    name: str | None = None, *, cache: bool = True, threads: int | None = None
) -> OnnxEmbedder:
    """The registry's embedder (default: ``reg.default_embedder``), pulled if needed, with the on-disk cache."""
    from overtonlite.registry import load_registry
    from overtonlite.sources import cache_home, ensure_embedder

    reg = load_registry()
    spec = reg.embedder(name or reg.default_embedder)
    folder = ensure_embedder(spec)
    return OnnxEmbedder(
        folder,
        name=spec.name,
        threads=threads,
        max_length=min(256, int(getattr(spec, "max_length", 256) or 256)),
        cache_dir=(cache_home() / "embcache") if cache else None,
        onnx_file=getattr(spec, "onnx_file", "model.onnx") or "model.onnx",
        token_output=getattr(spec, "token_output", None),
        calibration=getattr(spec, "calibration", None),
    )
