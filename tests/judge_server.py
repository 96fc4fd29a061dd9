"""A fake LLM judge behind an OpenAI-compatible chat endpoint, for the judge's tests.

Pairwise (AlpacaEval's prompt): P(first output wins) = σ((len₁ − len₂)/50 + position_bias),
answered as log-probabilities of `m` and `M` (or, with `logprobs=False`, as the verdict
alone). Grading (FastChat's prompt): `Rating: [[k]]` with k = 1 + len(answer) // 20, at most
10. So a test knows every answer in closed form.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OUTPUT = re.compile(r'"output": """(.*?)"""\n', re.DOTALL)
ANSWER = re.compile(
    r"\[The Start of Assistant's Answer\]\n(.*)\n\[The End of Assistant's Answer\]", re.DOTALL
)


def first_wins(output_1: str, output_2: str, position_bias: float) -> float:
    return 1 / (1 + math.exp(-((len(output_1) - len(output_2)) / 50 + position_bias)))


def rating(answer: str) -> int:
    return min(10, 1 + len(answer) // 20)


@dataclass
class JudgeState:
    served_name: str = "judge"
    position_bias: float = 0.8
    logprobs: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _answer(state: JudgeState, body: dict[str, Any]) -> dict[str, Any]:
    user = body["messages"][-1]["content"]
    grading = ANSWER.search(user)
    if grading is not None:
        content = f"The answer is fine. Rating: [[{rating(grading.group(1))}]]"
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    output_1, output_2 = OUTPUT.findall(user)
    p = first_wins(output_1, output_2, state.position_bias)
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": "m" if p > 0.5 else "M"},
        "finish_reason": "length",
    }
    if state.logprobs and body.get("logprobs"):
        top = [
            {"token": "m", "logprob": math.log(max(p, 1e-300))},
            {"token": "M", "logprob": math.log(max(1 - p, 1e-300))},
            {"token": "Both", "logprob": -20.0},
        ]
        choice["logprobs"] = {
            "content": [{"token": "m", "logprob": top[0]["logprob"], "top_logprobs": top}]
        }
    return {"choices": [choice], "usage": {"completion_tokens": 1}}


@contextmanager
def judge_server(state: JudgeState) -> Iterator[str]:
    """The base URL of a judge serving `state.served_name` on a free localhost port."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, payload = 200, {}
            if self.path != "/v1/chat/completions" or body.get("model") != state.served_name:
                status, payload = 404, {"error": {"message": "not found"}}
            else:
                with state.lock:
                    state.requests.append(body)
                payload = _answer(state, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
