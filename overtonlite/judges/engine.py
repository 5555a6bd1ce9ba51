"""Where a judge's answers come from: a local GGUF chat model under a GBNF grammar, or a served chat model with
``response_format`` (a JSON schema).

Local: llama-cpp-python's high-level ``Llama.create_chat_completion`` with ``LlamaGrammar.from_string`` (the GGUF's
own chat template; llama.cpp's grammar sampler only lets through tokens that keep the answer inside the grammar).

Served: ``/v1/chat/completions`` with the OpenAI form ``{"type": "json_schema", "json_schema": {...}}`` (OpenAI,
vLLM, llama-server). A server that refuses it (llama-cpp-python's server answers 500 to that form) is asked once
more with llama-cpp-python's form ``{"type": "json_object", "schema": {...}}``; the form that worked is kept and
recorded in the judge's identity. Both engines decode greedily (temperature 0, fixed seed) on the first attempt.
"""

from __future__ import annotations

import threading
from typing import Any

from overtonlite.errors import MissingDependencyError, ModelLoadError, OvertonliteError, UsageError

CTX_ERRORS = ("context", "too long", "exceed")


class JudgeUnavailable(OvertonliteError):
    """A judgment that cannot be made at all (e.g. the input does not fit the judge's context)."""


class LocalEngine:
    """A local GGUF chat model judged under a grammar."""

    backend = "llama.cpp grammar"

    def __init__(
        self, path: str, *, name: str, model_sha256: str, n_ctx: int = 4096, threads: int | None = None
    ):
        from overtonlite.backends.llamacpp.native import import_llama

        try:
            import_llama()  # chooses the OpenMP wait policy before libgomp loads
            from llama_cpp import Llama
        except (ImportError, MissingDependencyError) as exc:
            raise ModelLoadError(
                f"a local judge needs llama-cpp-python: pip install llama-cpp-python ({exc})"
            ) from None
        from overtonlite.util import physical_cores

        self.name = name
        self.model_sha256 = model_sha256
        self.n_ctx = n_ctx
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads or physical_cores(),
                n_threads_batch=threads or physical_cores(),
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError on a bad file
            raise ModelLoadError(f"cannot load the judge model {path}: {exc}") from None
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "model_sha256": self.model_sha256}

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        grammar: str,
        schema: dict[str, Any],
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> str:
        from llama_cpp import LlamaGrammar

        with self._lock:
            if grammar not in self._grammars:
                self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
            try:
                out = self._llm.create_chat_completion(
                    messages=messages,
                    grammar=self._grammars[grammar],
                    temperature=temperature,
                    top_p=1.0,
                    top_k=0,
                    min_p=0.0,
                    repeat_penalty=1.0,
                    max_tokens=max_tokens,
                    seed=seed,
                )
            except ValueError as exc:
                if any(w in str(exc).lower() for w in CTX_ERRORS):
                    raise JudgeUnavailable(f"prompt_too_long: {exc}") from None
                raise OvertonliteError(f"the judge {self.name} failed in llama.cpp: {exc}") from None
        return str(out["choices"][0]["message"].get("content") or "")

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()


class EndpointEngine:
    """A served chat model judged with ``response_format``; requests spread over the entry's URLs."""

    backend = "openai response_format"
    FORMS = ("json_schema", "json_object+schema")

    def __init__(
        self,
        base_urls: list[str],
        *,
        name: str,
        model: str,
        api_key: str,
        timeout: float = 600.0,
        retries: int = 3,
    ):
        from overtonlite.backends.openai.http import OpenAIServer

        self.name = name
        self.model = model
        self._servers = [
            OpenAIServer(u, model=model, api_key=api_key, timeout=timeout, retries=retries, use_env_key=False)
            for u in base_urls
        ]
        self._turn = 0
        self._form: str | None = None
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "model": self.model,
            "base_urls": [s.api_base for s in self._servers],
            "response_format": self._form,
        }

    @staticmethod
    def _format(form: str, schema: dict[str, Any]) -> dict[str, Any]:
        if form == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": "judgment", "schema": schema, "strict": True},
            }
        return {"type": "json_object", "schema": schema}

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        grammar: str,
        schema: dict[str, Any],
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> str:
        from overtonlite.backends.openai.http import HTTPStatusError

        with self._lock:
            srv = self._servers[self._turn % len(self._servers)]
            self._turn += 1
            forms = [self._form] if self._form else list(self.FORMS)
        url = f"{srv.api_base}/chat/completions"
        last = ""
        for form in forms:
            body = {
                "model": self.model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "top_p": 1.0,
                "seed": seed,
                "stream": False,
                "response_format": self._format(form, schema),
            }
            probing = self._form is None
            try:
                data = srv._http("POST", url, body, retry=not probing)
            except HTTPStatusError as err:
                if any(w in err.message.lower() for w in CTX_ERRORS):
                    raise JudgeUnavailable(f"prompt_too_long: {err.message}") from None
                last = str(err)
                if probing and ("response_format" in err.message or "json" in err.message.lower()):
                    continue
                raise OvertonliteError(f"the judge server at {url} refused the request: {err}") from None
            except OvertonliteError as err:
                last = str(err)
                if probing and "response_format" in last:
                    continue
                raise
            with self._lock:
                self._form = form
            choices = data.get("choices") if isinstance(data, dict) else None
            if not choices:
                raise OvertonliteError(f"the judge server at {url} answered without choices")
            return str((choices[0].get("message") or {}).get("content") or "")
        raise UsageError(f"the judge server at {url} accepts no JSON-schema response_format: {last}")

    def close(self) -> None:
        """Nothing to free."""
