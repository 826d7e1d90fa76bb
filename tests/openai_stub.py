"""A local stand-in for an OpenAI-compatible chat endpoint (http.server on 127.0.0.1, a free port) for tests.

``serve(handler)`` starts one; ``handler(request)`` gets each recorded ``Request`` and returns the reply text (HTTP
200 with a chat completion) or ``(status, body, headers)`` where body is a dict (sent as JSON), str or bytes.
"""
from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest


@dataclass
class Request:
    path: str
    headers: dict
    body: Any

    @property
    def content(self) -> Any:
        return self.body["messages"][0]["content"]

    @property
    def prompt(self) -> str:
        """The text of the user message (a plain string, or its text part)."""
        content = self.content
        return content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")

    def image(self):
        """The user message's image, decoded from its base64 PNG data URL."""
        from PIL import Image

        url = next(p["image_url"]["url"] for p in self.content if p["type"] == "image_url")
        header, data = url.split(",", 1)
        assert header == "data:image/png;base64"
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        assert image.format == "PNG"
        return image


def chat_completion(text: str) -> dict:
    return {"id": "chatcmpl-stub", "object": "chat.completion", "model": "stub",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


class StubServer:
    def __init__(self, handler: Callable[[Request], Any]):
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Request(self.path, dict(self.headers.items()), json.loads(raw))
                with stub._lock:
                    stub.requests.append(request)
                stub._answer(self, request)

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _answer(self, http_handler: BaseHTTPRequestHandler, request: Request) -> None:
        result = self.handler(request)
        status, body, headers = (200, chat_completion(result), {}) if isinstance(result, str) else result
        data = json.dumps(body).encode() if isinstance(body, dict) else (
            body.encode() if isinstance(body, str) else body)
        http_handler.send_response(status)
        for name, value in headers.items():
            http_handler.send_header(name, value)
        http_handler.send_header("Content-Type", "application/json")
        http_handler.send_header("Content-Length", str(len(data)))
        http_handler.end_headers()
        http_handler.wfile.write(data)

    def start(self) -> "StubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def serve():
    """``serve(handler) -> StubServer``, started now and stopped after the test."""
    servers: list[StubServer] = []

    def start(handler: Callable[[Request], Any]) -> StubServer:
        servers.append(StubServer(handler).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
