"""A generator that drives an existing serving engine over its OpenAI-compatible HTTP API.

vLLM, TGI, llama.cpp's ``llama-server`` and ``python -m llama_cpp.server`` all speak the OpenAI API. This backend
implements the :class:`~overtonlite.backends.base.Generator` protocol on top of it with the standard library only
(``urllib.request`` and a thread pool), so the same ``overtonlite sample`` drives a GPU server.

Raw and chat prompts. The protocol renders chat prompts to text before ``generate``. A server applies the chat
template itself, so :meth:`OpenAIGenerator.render_chat` does not render: it serialises the messages as JSON behind
the reserved prefix :data:`CHAT_PREFIX`. ``generate`` sends such a prompt to ``/v1/chat/completions`` as
``messages`` and every other prompt to ``/v1/completions`` as raw text (base models, URIAL).

Samples. A group's N samples are asked for with ``n=N`` and the group's first seed. A server that ignores ``n``
(llama-cpp-python, TGI) answers with one choice; from then on every sample is its own request with its own seed.
A sample's ``seed`` is the seed sent with the request that produced it, so with ``n`` all N samples of a group
record the same seed.

Finish reasons. ``length`` is exact. OpenAI servers report ``stop`` both for a matched stop string and for an
end-of-generation token. vLLM's ``stop_reason`` and TGI's ``eos_token`` tell them apart; when no stop string was
requested, ``stop`` can only mean ``eos``. Otherwise the two cannot be told apart, the sample records ``stop`` and
the group's ``extra["eos_or_stop_ambiguous"]`` counts such samples.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

from overtonlite.backends.base import (
    PROMPT_TOO_LONG,
    FinishReason,
    GenRequest,
    GroupResult,
    ProgressFn,
    SampleResult,
)
from overtonlite.errors import OvertonliteError, UsageError

CHAT_PREFIX = "\x1eovertonlite-chat-v1\x1e"
"""Reserved prefix of a prompt that carries chat messages as JSON instead of rendered text."""

DEFAULT_N_CTX = 4096
_N_MODES = {
    True: "n",
    False: "one request per sample",
    None: "auto (n, unless the first answer shows otherwise)",
}
# settings some servers reject (old vLLM: top_k=0; TGI: top_p=1.0): dropped, and reported in describe() and
# GroupResult.extra, once a server names them in a 4xx answer; the server's own default then applies
_OPTIONAL_FIELDS = (
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "repeat_penalty",
    "repeat_last_n",
    "seed",
)
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CONTEXT_RE = re.compile(
    r"context|too long|maximum model length|max_model_len|max_total_tokens|max_input_(tokens|length)|"
    r"max_new_tokens|must have less than \d+ tokens|'max_tokens' is too large",
    re.IGNORECASE,
)


def encode_chat(messages: Sequence[dict[str, str]]) -> str:
    """Serialise chat messages into a prompt string that :class:`OpenAIGenerator` sends as ``messages``."""
    clean = []
    for i, msg in enumerate(messages):
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise UsageError(f"chat message {i} needs string 'role' and 'content'")
        clean.append({"role": role, "content": content})
    return CHAT_PREFIX + json.dumps(clean, ensure_ascii=False, separators=(",", ":"))


def decode_chat(prompt: str) -> list[dict[str, str]] | None:
    """The messages of a prompt made by :func:`encode_chat`, or None for a raw-text prompt."""
    if not prompt.startswith(CHAT_PREFIX):
        return None
    return json.loads(prompt[len(CHAT_PREFIX) :])


def estimate_tokens(text: str) -> int:
    """A whitespace-based estimate (about 4 tokens per 3 words) for servers without a tokenize endpoint."""
    words = len(text.split())
    return math.ceil(words * 4 / 3) if words else 0


def map_finish_reason(choice: dict[str, Any], *, stop_requested: bool) -> tuple[FinishReason, bool]:
    """Map a choice's finish reason to stop/eos/length; the bool says whether stop vs eos was a guess."""
    reason = str(choice.get("finish_reason") or "").lower()
    if reason in ("length", "max_tokens", "model_length"):
        return "length", False
    if reason in ("eos", "eos_token"):
        return "eos", False
    if reason == "stop_sequence":
        return "stop", False
    if "stop_reason" in choice:  # vLLM: the matched stop string, a stop token id, or None for EOS
        return ("stop" if isinstance(choice["stop_reason"], str) else "eos"), False
    if not stop_requested:
        return "eos", False
    return "stop", True


class _HTTPStatusError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _error_message(raw: bytes) -> str:
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


@dataclass
class _Group:
    req: GenRequest
    messages: list[dict[str, str]] | None
    t0: float
    samples: dict[int, SampleResult] = field(default_factory=dict)
    pending: int = 0
    prompt_tokens: int = 0
    evaluated: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Job:
    group: _Group
    first: int  # index of the first sample this request produces
    n: int
    seed: int


@dataclass
class _Choice:
    text: str
    finish: FinishReason
    n_tokens: int
    tokens_source: str
    ambiguous: bool


@dataclass
class _Outcome:
    choices: list[_Choice]
    prompt_tokens: int = 0
    evaluated: int = 0
    error: str | None = None
    message: str = ""
    used_n: bool = False


class OpenAIGenerator:
    """Generator on an OpenAI-compatible server (vLLM, TGI, llama-server, llama-cpp-python's server).

    ``base_url`` is the API base as OpenAI clients take it (``http://host:8000/v1``; ``/v1`` is added to a bare
    host). ``model`` is the served model name sent with every request. ``api_key`` defaults to
    ``$OVERTONLITE_API_KEY`` then ``$OPENAI_API_KEY``. ``chat``: True sends chat prompts to the chat endpoint,
    False refuses them, None asks llama-server's ``/props`` for a chat template and otherwise assumes one.
    ``use_n``: None tries ``n`` and falls back to one request per sample, False never sends ``n > 1``.
    ``n_ctx`` overrides the context size the server reports (``DEFAULT_N_CTX`` when it reports none).
    Connection failures and 429/5xx answers are retried ``retries`` times with exponential backoff.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        name: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        max_concurrency: int = 4,
        chat: bool | None = None,
        model_sha256: str = "",
        n_ctx: int | None = None,
        use_n: bool | None = None,
        retries: int = 3,
        backoff: float = 0.5,
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
        if max_concurrency < 1:
            raise UsageError(f"max concurrency must be >= 1, got {max_concurrency}")
        self.model = model
        self.name = name or model
        self.model_sha256 = model_sha256
        self.timeout = float(timeout)
        self.max_concurrency = int(max_concurrency)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        key = api_key or os.environ.get("OVERTONLITE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        basic = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode() if userinfo else ""
        self._auth = f"Bearer {key}" if key else (f"Basic {basic}" if basic else "")
        self._chat = chat
        self._n_support: bool | None = None if use_n is None else use_n
        self._n_ctx_override = n_ctx
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._dropped: set[str] = set()
        self._tokenizer: tuple[str, str] | None = None  # (url, flavour), ("", "estimate") when none works
        self._server: dict[str, Any] | None = None

    # -- HTTP -------------------------------------------------------------------------------------------------
    def _http(self, method: str, url: str, body: dict[str, Any] | None = None, *, retry: bool = True) -> Any:
        """JSON request; retries transient failures, raises _HTTPStatusError (4xx) or OvertonliteError."""
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
                message = _error_message(err.read())
                if err.code not in _RETRY_STATUS:
                    raise _HTTPStatusError(err.code, message) from None
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
        except _HTTPStatusError:
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

    @property
    def n_ctx(self) -> int:
        """Context size: the override, else what the server reports, else ``DEFAULT_N_CTX``."""
        if self._n_ctx_override:
            return int(self._n_ctx_override)
        try:
            return int(self._server_info().get("n_ctx") or DEFAULT_N_CTX)
        except OvertonliteError:
            return DEFAULT_N_CTX

    # -- protocol ---------------------------------------------------------------------------------------------
    def has_chat_template(self) -> bool:
        """True when chat mode is on (``chat=None``: unless llama-server's /props reports no template)."""
        if self._chat is not None:
            return self._chat
        return bool(self._server_info().get("chat_template", True))

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The messages serialised behind :data:`CHAT_PREFIX`; the server applies its own chat template."""
        if not self.has_chat_template():
            raise UsageError(f"chat mode is off for '{self.name}'; use raw completion")
        return encode_chat(messages)

    def count_tokens(self, text: str) -> int:
        """Tokens by the server's tokenize endpoint (llama-cpp-python, vLLM, llama-server, TGI), else estimated."""
        return self._count(text)[0]

    def _count(self, text: str) -> tuple[int, str]:
        messages = decode_chat(text)
        if messages is not None:  # the chat template's own tokens are not counted
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        url, flavour = self._tokenizer_endpoint()
        if flavour == "estimate":
            return estimate_tokens(text), "estimate"
        try:
            return self._tokenize(url, flavour, text), "tokenize"
        except _HTTPStatusError:
            return estimate_tokens(text), "estimate"

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
            except (_HTTPStatusError, ValueError, TypeError, KeyError):
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

    def describe(self) -> dict[str, Any]:
        """Facts for the manifest (never the API key)."""
        info = dict(self._server_info())
        ctx_source = "option" if self._n_ctx_override else ("server" if "n_ctx" in info else "default")
        return {
            "backend": "openai",
            "base_url": self.api_base,
            "model": self.model,
            **info,
            "n_ctx": self.n_ctx,
            "chat": self.has_chat_template(),
            "n_ctx_source": ctx_source,
            "n_per_request": _N_MODES[self._n_support],
            "max_concurrency": self.max_concurrency,
            "timeout": self.timeout,
            "tokenizer": self._tokenizer_endpoint()[1],
            "dropped_fields": sorted(self._dropped),
        }

    def close(self) -> None:
        """Nothing to free: every request opens and closes its own connection."""

    # -- generation -------------------------------------------------------------------------------------------
    def generate(
        self, requests: Iterable[GenRequest], *, on_tokens: ProgressFn | None = None
    ) -> Iterator[GroupResult]:
        """Yield each group as its samples complete, with up to ``max_concurrency`` requests in flight."""
        source = iter(requests)
        queue: deque[_Job] = deque()
        # daemon threads, one per request in flight: Ctrl-C does not wait for requests still running
        results: SimpleQueue[tuple[_Job, _Outcome | BaseException]] = SimpleQueue()
        inflight = 0
        exhausted = False
        while True:
            while inflight < self.max_concurrency:
                if not queue:
                    if exhausted:
                        break
                    req = next(source, None)
                    if req is None:
                        exhausted = True
                        break
                    group = _Group(req=req, messages=decode_chat(req.prompt), t0=time.perf_counter())
                    if req.n == 0:
                        yield GroupResult(key=req.key, samples=[], prompt_tokens=0)
                        continue
                    queue.extend(self._plan(group, 0))
                job = queue.popleft()
                threading.Thread(target=self._worker, args=(job, results), daemon=True).start()
                inflight += 1
            if not inflight:
                return
            job, outcome = self._next_result(results)
            inflight -= 1
            if isinstance(outcome, BaseException):
                raise outcome  # an OvertonliteError ends the run; requests still in flight are abandoned
            result = self._absorb(job, outcome, queue, on_tokens)
            if result is not None:
                yield result

    @staticmethod
    def _next_result(results: SimpleQueue[tuple[_Job, _Outcome | BaseException]]) -> tuple[_Job, Any]:
        while True:  # short waits, so that Ctrl-C reaches the main thread at once
            try:
                return results.get(timeout=0.2)
            except Empty:
                continue

    def _worker(self, job: _Job, results: SimpleQueue[tuple[_Job, _Outcome | BaseException]]) -> None:
        try:
            results.put((job, self._run_job(job)))
        except BaseException as err:  # handed to the consuming thread
            results.put((job, err))

    def _plan(self, group: _Group, start: int) -> list[_Job]:
        """Jobs for samples ``start..N-1``: one ``n`` request, or one request per sample."""
        seeds = group.req.seeds
        remaining = len(seeds) - start
        if remaining > 1 and self._n_support is not False:
            jobs = [_Job(group, start, remaining, seeds[start])]
        else:
            jobs = [_Job(group, i, 1, seeds[i]) for i in range(start, len(seeds))]
        group.pending += len(jobs)
        return jobs

    def _absorb(
        self, job: _Job, out: _Outcome, queue: deque[_Job], on_tokens: ProgressFn | None
    ) -> GroupResult | None:
        group = job.group
        group.pending -= 1
        if group.error is None and out.error is not None:
            group.error = out.error
            group.extra["server_error"] = out.message
            keep = [j for j in queue if j.group is not group]  # drop its queued requests
            group.pending -= len(queue) - len(keep)
            queue.clear()
            queue.extend(keep)
        if group.error is None:
            if job.n > 1:
                with self._lock:
                    self._n_support = len(out.choices) >= job.n and out.used_n
            group.prompt_tokens = group.prompt_tokens or out.prompt_tokens
            group.evaluated += out.evaluated
            sources = group.extra.setdefault("n_tokens_source", [])
            for i, ch in enumerate(out.choices[: job.n]):
                group.samples[job.first + i] = SampleResult(
                    text=ch.text,
                    n_tokens=ch.n_tokens,
                    finish_reason=ch.finish,
                    seed=job.seed,
                    max_tokens=group.req.sampling.max_tokens,
                )
                if ch.tokens_source not in sources:
                    sources.append(ch.tokens_source)
                if ch.ambiguous:
                    group.extra["eos_or_stop_ambiguous"] = group.extra.get("eos_or_stop_ambiguous", 0) + 1
            if out.used_n and len(out.choices) > 1:
                group.extra["sampling_mode"] = "n"
            produced = sum(c.n_tokens for c in out.choices)
            if on_tokens is not None and produced:
                on_tokens(produced)
            got = min(len(out.choices), job.n)
            if got < job.n:  # the server ignored n: ask for the rest one by one, ahead of new groups
                queue.extendleft(reversed(self._plan(group, job.first + got)))
        if group.pending > 0:
            return None
        seconds = time.perf_counter() - group.t0
        if group.error is not None:
            tokens = group.prompt_tokens or self._count(group.req.prompt)[0]
            return GroupResult(
                key=group.req.key,
                samples=[],
                prompt_tokens=tokens,
                error=group.error,
                seconds=seconds,
                extra=group.extra,
            )
        group.extra.setdefault("sampling_mode", "one request per sample")
        if self._dropped:
            group.extra["dropped_fields"] = sorted(self._dropped)
        samples = [group.samples[i] for i in range(group.req.n)]
        return GroupResult(
            key=group.req.key,
            samples=samples,
            prompt_tokens=group.prompt_tokens,
            prompt_tokens_evaluated=group.evaluated,
            seconds=seconds,
            extra=group.extra,
        )

    def _body(self, job: _Job, n: int) -> dict[str, Any]:
        sp = job.group.req.sampling
        body: dict[str, Any] = {"model": self.model}
        if job.group.messages is not None:
            body["messages"] = job.group.messages
        else:
            body["prompt"] = job.group.req.prompt
        body.update(
            max_tokens=sp.max_tokens,
            temperature=sp.temperature,
            top_p=sp.top_p,
            stop=list(sp.stop),
            seed=job.seed,
            repetition_penalty=sp.repetition_penalty,  # vLLM, TGI
            repeat_penalty=sp.repetition_penalty,  # llama-server, llama-cpp-python
            repeat_last_n=-1,  # llama-server: penalise over the whole context, as HF/TGI/vLLM do
            top_k=sp.top_k,  # 0 = off; llama.cpp servers default to 40
            min_p=sp.min_p,  # 0 = off; llama.cpp servers default to 0.05
            stream=False,
        )
        if n > 1:
            body["n"] = n
        for name in self._dropped:
            body.pop(name, None)
        return body

    def _run_job(self, job: _Job) -> _Outcome:
        """One HTTP request (in a worker thread), adapting once to settings or ``n`` the server refuses."""
        chat = job.group.messages is not None
        url = f"{self.api_base}/chat/completions" if chat else f"{self.api_base}/completions"
        n = job.n
        while True:
            body = self._body(job, n)
            try:
                data = self._http("POST", url, body)
                break
            except _HTTPStatusError as err:
                if err.status in (400, 413, 422) and _CONTEXT_RE.search(err.message):
                    return _Outcome(choices=[], error=PROMPT_TOO_LONG, message=err.message)
                refused = [f for f in _OPTIONAL_FIELDS if f in body and re.search(rf"\b{f}\b", err.message)]
                if 400 <= err.status < 500 and refused:
                    with self._lock:
                        self._dropped.update(refused)
                    continue
                if 400 <= err.status < 500 and n > 1:
                    with self._lock:
                        self._n_support = False
                    n = 1
                    continue
                raise OvertonliteError(f"the server at {url} refused the request: {err}") from None
        return self._parse(job, data, n, chat)

    def _parse(self, job: _Job, data: Any, n: int, chat: bool) -> _Outcome:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices:
            raise OvertonliteError(f"the server at {self.api_base} answered without choices")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        usage = data.get("usage") or {}
        stops = job.group.req.sampling.stop
        parsed: list[_Choice] = []
        for ch in choices:
            text = (ch.get("message") or {}).get("content") if chat else ch.get("text")
            text = text or ""
            finish, ambiguous = map_finish_reason(ch, stop_requested=bool(stops))
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:  # a server that keeps the stop string, or ignored it
                text, finish, ambiguous = text[:cut], "stop", False
            if len(choices) == 1 and cut < 0 and isinstance(usage.get("completion_tokens"), int):
                count, source = usage["completion_tokens"], "usage"
            else:
                count, source = self._count(text)
            parsed.append(_Choice(text, finish, count, source, ambiguous))
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else 0
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        evaluated = prompt_tokens - cached if isinstance(cached, int) else prompt_tokens
        return _Outcome(parsed, prompt_tokens=prompt_tokens, evaluated=evaluated, used_n=n > 1)
