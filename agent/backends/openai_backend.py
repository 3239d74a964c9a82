"""A backend for any OpenAI-compatible chat server (vLLM, llama.cpp server, Ollama, ...).

Plain httpx rather than the openai client: we want our own retry policy (connection errors,
timeouts and 5xx/429 are retried with exponential backoff) and one-line errors that name the URL.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from agent.backends.base import BackendError, GenerationConfig, Reply
from agent.records import Message

RETRY_STATUS = {429, 500, 502, 503, 504}


class OpenAIBackend:
    """Chat completions over HTTP with timeouts, retries with backoff, and clear errors."""

    name = "openai"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080/v1",
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
    ):
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout)
        )
        self._model = model
        self.model_id = model or "server-default"

    def generate(self, messages: list[Message], config: GenerationConfig) -> Reply:
        """One chat completion; system faults (unreachable, 5xx after retries, bad JSON) raise."""
        body: dict[str, Any] = {
            "model": self._model_name(),
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if config.seed is not None:
            body["seed"] = config.seed
        if config.stop:
            body["stop"] = config.stop
        start = time.perf_counter()
        data = self._request("POST", "/chat/completions", body)
        return _parse_reply(data, self.base_url, time.perf_counter() - start)

    def _model_name(self) -> str:
        """The configured model, else the first one the server lists."""
        if self._model is None:
            data = self._request("GET", "/models")
            try:
                self._model = str(data["data"][0]["id"])
            except (KeyError, IndexError, TypeError) as exc:
                raise BackendError(f"malformed model list from {self.base_url}/models") from exc
            self.model_id = self._model
        return self._model

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send with retries; returns the decoded JSON body."""
        url = self.base_url + path
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.client.request(method, path, json=body)
            except httpx.TimeoutException:
                problem = f"cannot reach {self.base_url}: timed out"
                continue
            except httpx.TransportError as exc:
                problem = f"cannot reach {self.base_url}: {_reason(exc)}"
                continue
            if response.status_code in RETRY_STATUS:
                problem = f"{url} answered HTTP {response.status_code}: {_snippet(response.text)}"
                continue
            if response.status_code >= 400:
                raise BackendError(f"{url} answered HTTP {response.status_code}: {_snippet(response.text)}")
            try:
                return response.json()
            except ValueError as exc:
                raise BackendError(
                    f"malformed response from {url}: not JSON: {_snippet(response.text)}"
                ) from exc
        raise BackendError(f"{problem} (after {self.retries + 1} attempts)")

    def close(self) -> None:
        self.client.close()


def _parse_reply(data: Any, base_url: str, seconds: float) -> Reply:
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("content is not a string")
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return Reply(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cached_tokens=int(details.get("cached_tokens") or 0),
            seconds=seconds,
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise BackendError(f"malformed response from {base_url}/chat/completions: {exc!r}") from exc


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text:
        return "unknown host"
    return str(exc) or type(exc).__name__


def _snippet(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."
