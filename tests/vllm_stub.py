"""A stand-in for a vLLM OpenAI-compatible server on 127.0.0.1: exactly the part of vLLM's API medrival uses.

``GET /v1/models`` lists the served model; ``POST /v1/chat/completions`` answers in vLLM's schema
(``ChatCompletionResponse``: choices[0].message, usage, and with ``prompt_logprobs`` one entry per prompt token,
None first, then ``{token_id: {logprob, rank, decoded_token}}``). Its "tokenizer" splits a rendered conversation
on spaces: ``<image> {question}`` for the user turn, then `` ASSISTANT:`` (add_generation_prompt, the default) or
`` ASSISTANT: {reply}`` (continue_final_message). Token t's log-probability is ``token_logprob(token, t)``. A
prompt plus max_tokens over ``CONTEXT`` tokens gets vLLM's HTTP 400. Run as a script it serves until killed:
``python tests/vllm_stub.py --port N [--model NAME]``.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTEXT = 64
MODEL = "stub/llava-1.5-7b-hf"


def token_logprob(token: str, position: int) -> float:
    return -0.1 * (len(token) % 5 + 1) - 0.001 * position


def reply_for(question: str) -> str:
    return "yes" if "fracture" in question else f"the {question.split()[-1].strip('?')}"


def render(body: dict) -> list[str]:
    """The prompt tokens of a request, as the stub's template lays them out."""
    tokens = []
    for message in body["messages"]:
        if message["role"] == "user":
            text = next(part["text"] for part in message["content"] if part["type"] == "text")
            tokens += ["<image>", *text.split()]
        else:
            tokens += ["ASSISTANT:", *message["content"].split()]
    if body.get("add_generation_prompt", True) and not body.get("continue_final_message", False):
        tokens.append("ASSISTANT:")
    return tokens


class Stub:
    def __init__(self, model: str = MODEL, port: int = 0, schema: str = "vllm", delay_s: float = 0.0):
        self.model, self.schema, self.delay_s = model, schema, delay_s
        self.requests: list[dict] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": stub.model, "object": "model"}]})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with stub.lock:
                    stub.requests.append(body)
                    stub.in_flight += 1
                    stub.most_in_flight = max(stub.most_in_flight, stub.in_flight)
                try:
                    time.sleep(stub.delay_s)
                    self._send(*stub.answer(body))
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, body: dict) -> tuple[int, dict]:
        if body.get("model") != self.model:
            return 404, {"object": "error", "message": f"The model `{body.get('model')}` does not exist.",
                         "type": "NotFoundError", "code": 404}
        tokens = render(body)
        asked = len(tokens) + int(body.get("max_tokens", 16))
        if asked > CONTEXT:
            return 400, {"object": "error", "type": "BadRequestError", "code": 400, "message": (
                f"This model's maximum context length is {CONTEXT} tokens. However, you requested {asked} tokens "
                f"({len(tokens)} in the messages, {body.get('max_tokens')} in the completion). Please reduce the "
                "length of the messages or completion.")}
        question = " ".join(tokens[1:tokens.index("ASSISTANT:")] if "ASSISTANT:" in tokens else tokens[1:])
        response = {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": self.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_for(question)},
                                 "logprobs": None, "finish_reason": "stop", "stop_reason": None}],
                    "usage": {"prompt_tokens": len(tokens), "total_tokens": len(tokens) + 1, "completion_tokens": 1},
                    "prompt_logprobs": None}
        if body.get("prompt_logprobs") is not None:
            response["prompt_logprobs"] = [None] + [
                {str(1000 + position): {"logprob": token_logprob(token, position), "rank": 1,
                                        "decoded_token": token}}
                for position, token in enumerate(tokens) if position > 0]
        if self.schema == "no-prompt-logprobs":
            response.pop("prompt_logprobs")
        elif self.schema == "no-choices":
            response = {"id": "x", "object": "chat.completion", "outputs": [{"text": "yes"}]}
        return 200, response

    def __enter__(self) -> "Stub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args()
    with Stub(args.model, args.port):
        threading.Event().wait()
