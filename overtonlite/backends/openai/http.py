"""The server side of the OpenAI-compatible backend: URL and credentials, JSON requests with retries, and the
probes of what a server is and offers (served models, context size, chat template, a tokenize endpoint).

Standard library only (``urllib.request``). Connection failures and 408/425/429/5xx answers are retried with
exponential backoff; other 4xx answers raise :class:`HTTPStatusError` so the generator can adapt (drop a setting
the server refuses, stop sending ``n``); anything else is a one-line :class:`~overtonlite.errors.OvertonliteError`.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from overtonlite.errors import OvertonliteError, UsageError

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class HTTPStatusError(Exception):
    """A 4xx answer: ``status`` and the server's own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def error_message(raw: bytes) -> str:
    """The message of an error body (OpenAI, vLLM, TGI and llama-server shapes), on one line."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    msg: Any = data
    for key in ("error", "detail", "message"):
        if isinstance(msg, dict) and key in msg:
            msg = msg[key]
    if isinstance(msg, dict) and "message" in msg:
        msg = msg["message"]
    return " ".join(str(msg).split())[:300]


class OpenAIServer:
    """An OpenAI-compatible server: ``api_base`` (``.../v1``), ``root`` (for ``/props``, ``/tokenize``...),
    the served ``model`` name, credentials (``api_key``, else ``$OVERTONLITE_API_KEY`` / ``$OPENAI_API_KEY``, else
    ``user:password@`` in the URL as basic auth; ``use_env_key=False`` skips the environment), ``timeout`` per
    request, ``retries`` and ``backoff``."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout: float = 600.0,
        retries: int = 3,
        backoff: float = 0.5,
        use_env_key: bool = True,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"--base-url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}"
            )
        path = parts.path.rstrip("/") or "/v1"
        userinfo, _, netloc = parts.netloc.rpartition("@")  # user:password@ becomes HTTP basic auth
        self.api_base = urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))
        root_path = path[: -len("/v1")] if path.endswith("/v1") else ""
        self.root = urllib.parse.urlunsplit((parts.scheme, netloc, root_path, "", ""))
        if not model:
            raise UsageError("the openai backend needs --model (the name the server serves)")
        self.model = model
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        key = api_key
        if not key and use_env_key:
            key = os.environ.get("OVERTONLITE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        basic = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode() if userinfo else ""
        self._auth = f"Bearer {key}" if key else (f"Basic {basic}" if basic else "")
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._tokenizer: tuple[str, str] | None = None  # (url, flavour), ("", "estimate") when none works
        self._server: dict[str, Any] | None = None

    # -- HTTP -------------------------------------------------------------------------------------------------
    def _http(self, method: str, url: str, body: dict[str, Any] | None = None, *, retry: bool = True) -> Any:
        """JSON request; retries transient failures, raises HTTPStatusError (4xx) or OvertonliteError."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._auth:
            headers["Authorization"] = self._auth
        attempts = 1 + (self.retries if retry else 0)
        start, reason = time.monotonic(), ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
                return json.loads(payload) if payload else None
            except urllib.error.HTTPError as err:
                message = error_message(err.read())
                if err.code not in RETRY_STATUS:
                    raise HTTPStatusError(err.code, message) from None
                reason = f"HTTP {err.code}: {message}"
            except (TimeoutError, OSError, http.client.HTTPException) as err:
                cause = err.reason if isinstance(err, urllib.error.URLError) else err
                if isinstance(cause, TimeoutError) or "timed out" in str(cause):
                    raise OvertonliteError(
                        f"no answer from the server at {url} within {self.timeout:g}s (raise --timeout)"
                    ) from None
                if isinstance(cause, ConnectionRefusedError):
                    reason = "connection refused"
                else:
                    reason = str(getattr(cause, "strerror", None) or cause) or type(cause).__name__
            except ValueError:
                raise OvertonliteError(f"the server at {url} did not answer with JSON") from None
        raise OvertonliteError(
            f"cannot use the OpenAI-compatible server at {url}: {reason} "
            f"({attempts} attempt{'s' if attempts > 1 else ''} in {time.monotonic() - start:.1f}s)"
        )

    def _get_optional(self, url: str) -> Any:
        """GET that returns None on any 4xx (an endpoint this server does not have)."""
        try:
            return self._http("GET", url)
        except HTTPStatusError:
            return None

    # -- server facts ------------------------------------------------------------------------------------------
    def _server_info(self) -> dict[str, Any]:
        with self._lock:
            if self._server is not None:
                return self._server
        models = self._get_optional(f"{self.api_base}/models")
        entries = models.get("data", []) if isinstance(models, dict) else []
        ids = [str(m.get("id")) for m in entries if isinstance(m, dict)]
        info: dict[str, Any] = {"server_models": ids}
        match = next((m for m in entries if isinstance(m, dict) and m.get("id") == self.model), None)
        info["server_model"] = self.model if match else (ids[0] if len(ids) == 1 else None)
        entry = match or (entries[0] if len(entries) == 1 else {})
        if isinstance(entry, dict) and entry.get("owned_by"):
            info["owned_by"] = entry["owned_by"]
        if isinstance(entry, dict) and isinstance(entry.get("max_model_len"), int):  # vLLM
            info["n_ctx"] = entry["max_model_len"]
        props = self._get_optional(f"{self.root}/props")  # llama-server
        if isinstance(props, dict):
            settings = props.get("default_generation_settings") or {}
            if isinstance(settings, dict) and isinstance(settings.get("n_ctx"), int):
                info.setdefault("n_ctx", settings["n_ctx"])
            if "chat_template" in props:
                info["chat_template"] = bool(props["chat_template"])
        if "n_ctx" not in info:
            tgi = self._get_optional(f"{self.root}/info")  # TGI
            if isinstance(tgi, dict) and isinstance(tgi.get("max_total_tokens"), int):
                info["n_ctx"] = tgi["max_total_tokens"]
        with self._lock:
            self._server = info
        return info

    def _tokenizer_endpoint(self) -> tuple[str, str]:
        with self._probe_lock:
            if self._tokenizer is None:
                self._tokenizer = self._probe_tokenizer()
            return self._tokenizer

    def _probe_tokenizer(self) -> tuple[str, str]:
        for url, flavour in (
            (f"{self.root}/extras/tokenize/count", "llama-cpp-python"),
            (f"{self.root}/tokenize", "vllm"),
            (f"{self.root}/tokenize", "llama-server"),
            (f"{self.root}/tokenize", "tgi"),
        ):
            try:
                if self._tokenize(url, flavour, "probe text") > 0:  # llama-server answers [] to other shapes
                    return url, flavour
            except (HTTPStatusError, ValueError, TypeError, KeyError):
                continue
        return "", "estimate"

    def _tokenize(self, url: str, flavour: str, text: str) -> int:
        body: dict[str, Any] = {
            "llama-cpp-python": {"input": text, "model": self.model},
            "vllm": {"model": self.model, "prompt": text, "add_special_tokens": False},
            "llama-server": {"content": text},
            "tgi": {"inputs": text},
        }[flavour]
        out = self._http("POST", url, body)
        if isinstance(out, list):
            return len(out)
        if isinstance(out.get("count"), int):
            return out["count"]
        return len(out["tokens"])
