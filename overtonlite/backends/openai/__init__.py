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

import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

from overtonlite.backends.base import (
    PROMPT_TOO_LONG,
    GenRequest,
    GroupResult,
    ProgressFn,
    SampleResult,
)
from overtonlite.backends.openai.http import HTTPStatusError, OpenAIServer
from overtonlite.backends.openai.proto import (
    CHAT_PREFIX,
    CONTEXT_RE,
    OPTIONAL_FIELDS,
    Choice,
    Outcome,
    decode_chat,
    encode_chat,
    estimate_tokens,
    map_finish_reason,
)
from overtonlite.errors import OvertonliteError, UsageError

__all__ = [
    "CHAT_PREFIX",
    "DEFAULT_N_CTX",
    "OpenAIGenerator",
    "OpenAIServer",
    "decode_chat",
    "encode_chat",
    "estimate_tokens",
    "map_finish_reason",
]

DEFAULT_N_CTX = 4096
# settings that are never dropped: a server refusing one of them stops the run with a line naming it
REQUIRED_FIELDS = ("temperature", "max_tokens", "stop")
_N_MODES = {
    True: "n",
    False: "one request per sample",
    None: "auto (n, unless the first answer shows otherwise)",
}


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


class OpenAIGenerator(OpenAIServer):
    """Generator on an OpenAI-compatible server (vLLM, TGI, llama-server, llama-cpp-python's server).

    ``base_url`` is the API base as OpenAI clients take it (``http://host:8000/v1``; ``/v1`` is added to a bare
    host), or a list of them serving the same model: each request goes to the least busy one (ties round-robin),
    with up to ``max_concurrency`` requests in flight per URL; the first URL answers the probes. ``model`` is the served model name sent with every request. ``api_key`` defaults to
    ``$OVERTONLITE_API_KEY`` then ``$OPENAI_API_KEY``. ``chat``: True sends chat prompts to the chat endpoint,
    False refuses them, None asks llama-server's ``/props`` for a chat template and otherwise assumes one.
    ``use_n``: None tries ``n`` and falls back to one request per sample, False never sends ``n > 1``.
    ``n_ctx`` overrides the context size the server reports (``DEFAULT_N_CTX`` when it reports none).
    Connection failures and 429/5xx answers are retried ``retries`` times with exponential backoff.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
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
        use_env_key: bool = True,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise UsageError("the openai backend needs at least one base URL")
        server_kw: dict[str, Any] = dict(
            model=model,
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            use_env_key=use_env_key,
        )
        super().__init__(urls[0], **server_kw)
        # the first server answers the probes (models, context, tokenizer); generation spreads over all of them
        self._servers: list[OpenAIServer] = [self, *(OpenAIServer(u, **server_kw) for u in urls[1:])]
        self._inflight = [0] * len(self._servers)
        self._turn = 0
        if max_concurrency < 1:
            raise UsageError(f"max concurrency must be >= 1, got {max_concurrency}")
        self.name = name or model
        self.model_sha256 = model_sha256
        self.per_endpoint = int(max_concurrency)
        self.max_concurrency = self.per_endpoint * len(self._servers)
        self._chat = chat
        self._n_support: bool | None = None if use_n is None else use_n
        self._n_ctx_override = n_ctx
        self._dropped: set[str] = set()

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
        except HTTPStatusError:
            return estimate_tokens(text), "estimate"

    def describe(self) -> dict[str, Any]:
        """Facts for the manifest (never the API key)."""
        info = dict(self._server_info())
        ctx_source = "option" if self._n_ctx_override else ("server" if "n_ctx" in info else "default")
        return {
            "backend": "openai",
            "base_url": self.api_base,
            "base_urls": [srv.api_base for srv in self._servers],
            "model": self.model,
            **info,
            "n_ctx": self.n_ctx,
            "chat": self.has_chat_template(),
            "n_ctx_source": ctx_source,
            "n_per_request": _N_MODES[self._n_support],
            "max_concurrency": self.max_concurrency,
            "concurrency_per_endpoint": self.per_endpoint,
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
        results: SimpleQueue[tuple[_Job, Outcome | BaseException]] = SimpleQueue()
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
    def _next_result(results: SimpleQueue[tuple[_Job, Outcome | BaseException]]) -> tuple[_Job, Any]:
        while True:  # short waits, so that Ctrl-C reaches the main thread at once
            try:
                return results.get(timeout=0.2)
            except Empty:
                continue

    def _worker(self, job: _Job, results: SimpleQueue[tuple[_Job, Outcome | BaseException]]) -> None:
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
        self, job: _Job, out: Outcome, queue: deque[_Job], on_tokens: ProgressFn | None
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

    def _run_job(self, job: _Job) -> Outcome:
        """One HTTP request (in a worker thread), adapting once to settings or ``n`` the server refuses."""
        chat = job.group.messages is not None
        slot = self._acquire()
        try:
            return self._run_on(self._servers[slot], job, chat)
        finally:
            with self._lock:
                self._inflight[slot] -= 1

    def _acquire(self) -> int:
        """The endpoint for the next request: the least busy one, ties broken round-robin."""
        with self._lock:
            k = len(self._servers)
            order = [(self._turn + i) % k for i in range(k)]
            slot = min(order, key=lambda i: self._inflight[i])
            self._turn = (slot + 1) % k
            self._inflight[slot] += 1
            return slot

    def _run_on(self, srv: OpenAIServer, job: _Job, chat: bool) -> Outcome:
        url = f"{srv.api_base}/chat/completions" if chat else f"{srv.api_base}/completions"
        n = job.n
        while True:
            body = self._body(job, n)
            try:
                data = srv._http("POST", url, body)
                break
            except HTTPStatusError as err:
                if err.status in (400, 413, 422) and CONTEXT_RE.search(err.message):
                    return Outcome(choices=[], error=PROMPT_TOO_LONG, message=err.message)
                refused = [f for f in OPTIONAL_FIELDS if f in body and re.search(rf"\b{f}\b", err.message)]
                if 400 <= err.status < 500 and refused:
                    with self._lock:
                        self._dropped.update(refused)
                    continue
                if 400 <= err.status < 500 and n > 1:
                    with self._lock:
                        self._n_support = False
                    n = 1
                    continue
                named = next((f for f in REQUIRED_FIELDS if re.search(rf"\b{f}\b", err.message)), None)
                if named is not None:  # a paper setting we never drop: stop with a line naming it
                    raise OvertonliteError(
                        f"the server at {url} refused the setting {named}={body.get(named)!r}: {err}"
                    ) from None
                raise OvertonliteError(f"the server at {url} refused the request: {err}") from None
        return self._parse(job, data, n, chat)

    def _parse(self, job: _Job, data: Any, n: int, chat: bool) -> Outcome:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices:
            raise OvertonliteError(f"the server at {self.api_base} answered without choices")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        usage = data.get("usage") or {}
        stops = job.group.req.sampling.stop
        parsed: list[Choice] = []
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
            parsed.append(Choice(text, finish, count, source, ambiguous))
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else 0
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        evaluated = prompt_tokens - cached if isinstance(cached, int) else prompt_tokens
        return Outcome(parsed, prompt_tokens=prompt_tokens, evaluated=evaluated, used_n=n > 1)
