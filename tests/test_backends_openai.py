"""The OpenAI-compatible backend against real local servers: a scripted HTTP server and llama.cpp's."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from agent.backends.base import BackendError, GenerationConfig
from agent.backends.openai_backend import OpenAIBackend
from agent.models import smollm2_gguf
from agent.records import Message

HELLO = [Message(role="user", content="Say hello.")]
OK_BODY = {
    "choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 4}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering each POST with the next (status, body) queued."""

    def __init__(self, answers: list[tuple[int, str]]):
        self.answers = list(answers)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append(json.loads(self.rfile.read(length)))
                status, body = outer.answers.pop(0) if outer.answers else (500, "exhausted")
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[ScriptedServer] = []

    def start(*answers: tuple[int, str]) -> ScriptedServer:
        servers.append(ScriptedServer(list(answers)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_closed_port_gives_one_line_error_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend(url, model="m", retries=2, backoff=0.2)
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        backend.generate(HELLO, GenerationConfig())
    assert str(info.value) == f"cannot reach {url}: connection refused (after 3 attempts)"
    # Backoff 0.2 s then 0.4 s: the retries really waited.
    assert time.monotonic() - start >= 0.6


def test_retries_5xx_then_succeeds_and_sends_the_config(serve) -> None:
    server = serve((500, "busy"), (503, "loading"), (200, json.dumps(OK_BODY)))
    backend = OpenAIBackend(server.url, model="m", retries=3, backoff=0.01)
    config = GenerationConfig(max_new_tokens=5, temperature=0.7, seed=3, stop=["```"])
    reply = backend.generate(HELLO, config)
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens) == (
        "hello",
        9,
        1,
        4,
    )
    assert len(server.requests) == 3
    sent = server.requests[-1]
    assert sent["max_tokens"] == 5 and sent["seed"] == 3 and sent["stop"] == ["```"]
    assert sent["messages"] == [{"role": "user", "content": "Say hello."}]


def test_persistent_500_then_malformed_json(serve) -> None:
    server = serve((500, "boom"), (500, "boom"), (200, "{not json"))
    backend = OpenAIBackend(server.url, model="m", retries=1, backoff=0.01)
    with pytest.raises(BackendError, match=r"HTTP 500: boom \(after 2 attempts\)"):
        backend.generate(HELLO, GenerationConfig())
    with pytest.raises(BackendError, match="malformed response .* not JSON"):
        backend.generate(HELLO, GenerationConfig())


def test_json_without_choices_is_malformed(serve) -> None:
    server = serve((200, json.dumps({"choices": []})), (200, json.dumps({"choices": [{"message": {}}]})))
    backend = OpenAIBackend(server.url, model="m", retries=0)
    for _ in range(2):
        with pytest.raises(BackendError, match="malformed response"):
            backend.generate(HELLO, GenerationConfig())


def test_client_error_is_not_retried(serve) -> None:
    server = serve((400, '{"error": "bad model"}'), (200, json.dumps(OK_BODY)))
    backend = OpenAIBackend(server.url, model="m", retries=3, backoff=0.01)
    with pytest.raises(BackendError, match="HTTP 400"):
        backend.generate(HELLO, GenerationConfig())
    assert len(server.requests) == 1


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server")
    from agent.backends.llamacpp_backend import default_threads

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1"]
    cmd += [
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--model_alias",
        "smollm2",
        "--n_threads",
        str(default_threads()),
    ]
    # The server logs a lot while loading: a file, not a pipe, so a full pipe buffer cannot block it.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail(f"llama_cpp.server did not come up in 180 s: {log_path.read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_real_llama_cpp_server(llama_server: str) -> None:
    backend = OpenAIBackend(llama_server, retries=1)
    reply = backend.generate(
        [Message(role="user", content="Count from 1 to 20, separated by commas.")],
        GenerationConfig(max_new_tokens=40, temperature=0.0),
    )
    assert backend.model_id == "smollm2"
    assert reply.text.strip() and reply.completion_tokens > 0 and reply.prompt_tokens > 5
    again = backend.generate(
        [Message(role="user", content="Count from 1 to 20, separated by commas.")],
        GenerationConfig(max_new_tokens=40, temperature=0.0, stop=["5"]),
    )
    # The server honours our stop string. (Not compared with the first reply token for token: the
    # server re-evaluates the last prompt token from its prefix cache, and the 135M Q4 model's greedy
    # choice can flip on such float differences, e.g. "3. 3" against "3. 4".)
    assert "5" in reply.text
    assert "5" not in again.text and again.finish_reason == "stop"
    assert again.completion_tokens < reply.completion_tokens
