"""A small OpenAI-compatible completions server over a real model, for the API backend's tests.

It serves POST /v1/completions (prompt, n, max_tokens, temperature, top_p, top_k, seed) by
sampling with transformers, reports usage, and can be told to fail its next requests (503,
or 429 with Retry-After) to exercise the client's retries. The vLLM target also tests the
backend against vLLM's own server.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch


@dataclass
class ServerState:
    model: Any
    tokenizer: Any
    served_name: str
    failures_left: int = 0  # answer this many requests with 503 before serving
    authorizations: list[str] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _complete(state: ServerState, body: dict[str, Any]) -> dict[str, Any]:
    tokenizer, model = state.tokenizer, state.model
    ids = tokenizer(body["prompt"], return_tensors="pt")
    n = int(body.get("n", 1))
    temperature = float(body.get("temperature", 1.0))
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": float(body.get("top_p", 1.0))}
        | {"top_k": int(body.get("top_k", 0))}
        if temperature > 0
        else {"do_sample": False}  # temperature 0 means greedy, as in OpenAI's API
    )
    with state.lock, torch.no_grad():  # one model, many handler threads
        torch.manual_seed(int(body.get("seed", 0)))
        output = model.generate(
            **ids,
            **sampling,
            num_return_sequences=n,
            max_new_tokens=int(body["max_tokens"]),
            pad_token_id=tokenizer.pad_token_id,
        )
    choices, used = [], 0
    for index, row in enumerate(output[:, ids["input_ids"].shape[1] :].tolist()):
        stopped = tokenizer.eos_token_id in row
        tokens = row[: row.index(tokenizer.eos_token_id)] if stopped else row
        used += len(tokens) + (1 if stopped else 0)
        choices.append(
            {
                "index": index,
                "text": tokenizer.decode(tokens, skip_special_tokens=True),
                "finish_reason": "stop" if stopped else "length",
            }
        )
    return {"object": "text_completion", "choices": choices, "usage": {"completion_tokens": used}}


def serve(state: ServerState) -> ThreadingHTTPServer:
    """Start the server on a free localhost port, in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, payload: dict[str, Any], headers: dict | None = None):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.authorizations.append(self.headers.get("Authorization", ""))
            if self.path != "/v1/completions":
                self._answer(404, {"error": {"message": "not found"}})
                return
            if body.get("model") != state.served_name:
                self._answer(404, {"error": {"message": f"model {body.get('model')} not served"}})
                return
            with state.lock:
                failing = state.failures_left > 0
                state.failures_left -= 1 if failing else 0
            if failing:
                self._answer(503, {"error": {"message": "busy"}}, {"Retry-After": "0.1"})
                return
            state.bodies.append(body)
            self._answer(200, _complete(state, body))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
