"""A sentence embedder on an OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, TEI, llama-server
``--embedding``, llama-cpp-python's server with ``--embedding true``).

The API returns one vector per input. Token-level states, which BERTScore-style F1 needs, are not part of it: they
come from a local token embedder (the registry's local default embedder) given to the constructor, and
:meth:`OpenAIEmbedder.describe` says so; the summary's settings carry that description. A server that returns
token-level vectors instead of a pooled one (llama.cpp on a model without a pooling type) gets them mean-pooled
here, and ``describe()["pooling"]`` records it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from overtonlite.backends.openai.http import HTTPStatusError, OpenAIServer
from overtonlite.errors import ModelLoadError, OvertonliteError, UsageError

BATCH = 32


class OpenAIEmbedder:
    """Sentence vectors from ``/v1/embeddings`` on one or more servers (batches of :data:`BATCH` texts, spread
    over the URLs, up to ``max_concurrency`` in flight per URL), L2-normalised here; an in-memory cache by text.

    ``token_embedder``: a callable returning the local embedder used for token states and token counts (opened on
    first use), or None when there is none (then :meth:`embed_with_tokens` raises).
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        model: str,
        name: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        retries: int = 3,
        max_concurrency: int = 4,
        dim: int | None = None,
        calibration: Any = None,
        token_embedder: Callable[[], Any] | None = None,
        token_embedder_name: str | None = None,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise UsageError("a served embedder needs at least one base URL")
        self._servers = [
            OpenAIServer(u, model=model, api_key=api_key, timeout=timeout, retries=retries, use_env_key=False)
            for u in urls
        ]
        self.model = model
        self.name = name or model
        self.max_concurrency = max(1, int(max_concurrency))
        self.calibration = calibration
        self._dim = dim
        self._cache: dict[str, np.ndarray] = {}
        self._token_factory = token_embedder
        self._token_name = token_embedder_name
        self._token: Any = None
        self._lock = threading.Lock()
        self._pooled_here = False
        self._per_text = False  # one text per request (servers answering a batch with token-level vectors)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    # -- sentence vectors ---------------------------------------------------------------------------------
    def _request(self, i: int, texts: list[str]) -> list[np.ndarray]:
        if len(texts) > 1 and self._per_text:
            return [v for j, t in enumerate(texts) for v in self._request(i + j, [t])]
        srv = self._servers[i % len(self._servers)]
        url = f"{srv.api_base}/embeddings"
        try:
            data = srv._http("POST", url, {"model": self.model, "input": texts})
        except HTTPStatusError as err:
            raise OvertonliteError(f"the embedding server at {url} refused the request: {err}") from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise OvertonliteError(f"the embedding server at {url} did not answer with {len(texts)} vectors")
        items = sorted(items, key=lambda d: d.get("index", 0))
        if len(texts) > 1 and any(np.ndim(item.get("embedding")) == 2 for item in items):
            # token-level answers to a batch: llama-cpp-python 0.3.36 gets every input but the first wrong there
            # (the real-server test found it), so such a server is asked one text per request from now on
            self._per_text = True
            return self._request(i, texts)
        out = []
        for item in items:
            vec = np.asarray(item.get("embedding"), dtype=np.float64)
            if vec.ndim == 2:  # token-level vectors: pool them here
                vec = vec.mean(axis=0)
                self._pooled_here = True
            if vec.ndim != 1 or not vec.size:
                raise OvertonliteError(f"the embedding server at {url} answered with a malformed vector")
            norm = float(np.linalg.norm(vec))
            out.append((vec / norm if norm > 0 else vec).astype(np.float32))
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence vectors, shape (len(texts), dim), float32."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        batches = [todo[i : i + BATCH] for i in range(0, len(todo), BATCH)]
        if batches:
            workers = min(len(batches), self.max_concurrency * len(self._servers))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(self._request, range(len(batches)), batches))
            for batch, vecs in zip(batches, results, strict=True):
                self._cache.update(zip(batch, vecs, strict=True))
        if not texts:
            return np.zeros((0, self._dim or 1), np.float32)
        out = np.stack([self._cache[t] for t in texts])
        self._dim = self._dim or int(out.shape[1])
        return out

    # -- token states (local) -----------------------------------------------------------------------------
    def _tokens(self) -> Any:
        with self._lock:
            if self._token is None:
                if self._token_factory is None:
                    raise ModelLoadError(
                        f"the served embedder '{self.name}' has no token states (/v1/embeddings returns one vector "
                        "per text) and the registry has no local embedder to take them from"
                    )
                self._token = self._token_factory()
            return self._token

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Served sentence vectors, and token states from the local token embedder."""
        _, toks = self._tokens().embed_with_tokens(texts)
        return self.embed(texts), toks

    def release_token_states(self) -> None:
        """Forget the local token embedder's in-memory token states (see the ONNX embedder)."""
        release = getattr(self._token, "release_token_states", None)
        if callable(release):
            release()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts by the local token embedder's tokenizer."""
        return list(self._tokens().count_tokens(texts))

    def describe(self) -> dict[str, Any]:
        """Identity for summaries and manifests: URLs, served model id, and where token states come from."""
        return {
            "name": self.name,
            "backend": "openai",
            "model": self.model,
            "base_urls": [s.api_base for s in self._servers],
            "dim": self._dim,
            "pooling": "client mean over token vectors" if self._pooled_here else "server",
            "texts_per_request": 1 if self._per_text else BATCH,
            "normalize": True,
            "token_states": (
                f"local embedder {self._token_name} (/v1/embeddings has no token states)"
                if self._token_factory is not None
                else "not available"
            ),
        }

    def close(self) -> None:
        """Nothing to free (and the local token embedder holds no server resources)."""
