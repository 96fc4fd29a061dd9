"""An OpenAI-compatible server: the one HTTP client every remote model goes through.

`w2s search --backend api` samples the large model from a completions endpoint; the LLM
judge (`weak2strong.scoring.judge`) asks a chat-completions endpoint. A server is never
trusted: every answer is read up to the size its request allows and checked for shape
before it is used, and a start-up probe checks the shape before any run folder exists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from weak2strong.errors import W2SError, printable, shown
from weak2strong.settings import setting


@dataclass
class ApiSettings:
    """The large model behind an OpenAI-compatible completions endpoint (`--backend api`):
    `vllm serve`, TGI, llama.cpp's server, or a hosted API; `large` is the served model name."""

    base_url: str = setting("http://localhost:8000/v1", help="the server's OpenAI-style base URL")
    api_key_env: str = setting(
        "OPENAI_API_KEY",
        help="environment variable holding the key (read at run time, never stored)",
        hash=False,
    )
    max_concurrency: int = setting(8, help="requests in flight at most", hash=False)
    timeout: float = setting(120.0, help="seconds per request", hash=False)
    max_retries: int = setting(
        5, help="retries on 429, 5xx and lost connections (backoff)", hash=False
    )
    send_seed: bool = setting(True, help="send each request's seed (vLLM and OpenAI honour it)")
    send_top_k: bool = setting(
        True, help="send top_k (not in OpenAI's API: turn off for hosted ones)"
    )

    def validate(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise W2SError(f"api.base_url must be an http(s) URL, got {self.base_url!r}")
        if self.max_concurrency < 1 or self.timeout <= 0 or self.max_retries < 0:
            raise W2SError("api.max_concurrency ≥ 1, api.timeout > 0, api.max_retries ≥ 0")


PROBE = {"prompt": "Hello", "max_tokens": 1, "temperature": 0.0}  # the start-up request


class CompletionsClient:
    """POST {base_url}/completions (or /chat/completions) with bounded concurrency, retries
    and clear errors."""

    RETRY_STATUSES = (408, 409, 429, 500, 502, 503, 504)

    def __init__(self, settings: ApiSettings, model: str, endpoint: str = "completions") -> None:
        settings.validate()
        self.settings = settings
        self.model = model
        self.url = settings.base_url.rstrip("/") + "/" + endpoint

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.settings.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        data = json.dumps({"model": self.model, **body}).encode()
        limit = answer_bytes_limit(int(body.get("n", 1)), int(body["max_tokens"]))
        for attempt in range(self.settings.max_retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=self._headers())
            try:
                with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                    # never more than an answer of this size can hold: a server that sends
                    # more is wrong, and reading it whole could exhaust memory
                    raw = response.read(limit + 1)
                return self._parsed(raw, limit)
            except urllib.error.HTTPError as error:
                detail = _one_line(error.read(300).decode(errors="replace"))
                if error.code in (401, 403):
                    raise W2SError(
                        f"{self.url} refused the request ({error.code}): set the key in "
                        f"${self.settings.api_key_env}"
                    ) from None
                if error.code in (404, 405):
                    raise W2SError(
                        f"{self.url} answered {error.code}: the server has no completions "
                        f"endpoint, or does not serve '{self.model}' ({detail})"
                    ) from None
                if error.code not in self.RETRY_STATUSES or attempt == self.settings.max_retries:
                    raise W2SError(f"{self.url} answered {error.code}: {detail}") from None
                wait = _retry_after(error.headers.get("Retry-After"), attempt)
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                if attempt == self.settings.max_retries:
                    raise self._unreachable(reason, attempt + 1) from None
                wait = _retry_after(None, attempt)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _parsed(self, raw: bytes, limit: int) -> dict[str, Any]:
        if len(raw) > limit:
            raise W2SError(
                f"{self.url} answered with more than {limit:,} bytes, more than the request "
                "allows: it is not an OpenAI-style completions server, or it ignores max_tokens"
            )
        try:
            answer = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            start = _one_line(raw[:60].decode(errors="replace"))
            raise W2SError(
                f"{self.url} answered with a body that is not JSON ({start!r}…): is base_url "
                "an OpenAI-style /v1 endpoint?"
            ) from None
        if not isinstance(answer, dict):
            raise W2SError(f"{self.url} answered with JSON that is not an object")
        return answer

    def _unreachable(self, reason: object, tries: int) -> W2SError:
        import socket

        if isinstance(reason, socket.timeout | TimeoutError):
            return W2SError(
                f"the completions server at {self.url} did not answer within "
                f"{self.settings.timeout:g} s ({tries} tries): it is up but slow; raise "
                "api.timeout or lower api.max_concurrency"
            )
        return W2SError(
            f"cannot reach the completions server at {self.url} ({reason}); is it running?"
        )

    def check(self) -> None:
        """One token, so a wrong URL, model, key or answer shape fails before any work starts."""
        parse_completions(self._post(PROBE), 1, 1, self.url)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request's checked answer (retries and errors as for every request)."""
        return self._post(body)

    def complete_all(self, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every request, at most `max_concurrency` in flight, answers in request order."""
        from concurrent.futures import ThreadPoolExecutor

        workers = min(self.settings.max_concurrency, max(1, len(bodies)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._post, bodies))


def _one_line(text: str) -> str:
    """A server's words as one plain line: no control characters reach the terminal."""
    return " ".join(printable(text).split())


# A token's text is a few characters; this bound is generous (byte-level fallbacks, escapes)
# and still refuses an answer that ignored max_tokens.
MAX_CHARS_PER_TOKEN = 64
ANSWER_OVERHEAD_BYTES = 64 * 1024


def answer_bytes_limit(n: int, max_tokens: int) -> int:
    """The most bytes an honest answer to n completions of max_tokens each can take (JSON
    escapes a character into at most 12 bytes)."""
    return ANSWER_OVERHEAD_BYTES + n * (max_tokens * MAX_CHARS_PER_TOKEN * 12 + 1024)


@dataclass(frozen=True)
class Completion:
    text: str
    finished: bool  # "stop": the model's EOS or a stop sequence ended it; "length": max_tokens


def parse_completions(
    answer: dict[str, Any], n: int, max_tokens: int, url: str
) -> tuple[list[Completion], int]:
    """The answer's n completions in index order and the completion tokens it reports;
    anything of another shape or size is one W2SError saying what is wrong."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise W2SError(f"{url} answered without a list of choices: not a completions answer")
    if len(choices) != n:
        raise W2SError(f"{url} returned {len(choices)} completions for n={n}")
    indices = [c.get("index", 0) for c in choices]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise W2SError(f"{url} answered with a choice whose index is not an integer")
    completions = []
    for choice in sorted(choices, key=lambda c: int(c.get("index", 0))):
        text, reason = choice.get("text"), choice.get("finish_reason")
        if not isinstance(text, str):
            raise W2SError(f"{url} answered with a choice whose text is not a string")
        if reason is not None and not isinstance(reason, str):
            raise W2SError(f"{url} answered with a finish_reason that is not a string")
        if len(text) > max_tokens * MAX_CHARS_PER_TOKEN:
            raise W2SError(
                f"{url} answered with {len(text):,} characters for max_tokens={max_tokens}: "
                "the server ignores max_tokens"
            )
        completions.append(Completion(text, reason == "stop"))
    usage = answer.get("usage")
    tokens = usage.get("completion_tokens", 0) if isinstance(usage, dict) else 0
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise W2SError(f"{url} reported completion_tokens that is not a count: {shown(tokens)}")
    return completions, tokens


def _retry_after(header: str | None, attempt: int) -> float:
    """The server's Retry-After if it gave one (capped), else exponential backoff."""
    if header:
        try:
            return min(float(header), 60.0)
        except ValueError:
            pass
    return min(0.5 * 2**attempt, 30.0)
