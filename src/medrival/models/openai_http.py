"""A small client for OpenAI-compatible chat endpoints (OpenAI, vLLM, TGI, LM Studio, Ollama...), standard library only.

Shared by the API generative model (``medrival.models.openai_api``) and the LLM judge
(``medrival.metrics.llm_judge``); it does not import torch, so metrics stay light.

The API key
    Read from the environment variable the caller names (default ``OPENAI_API_KEY``) at each request and never
    stored on an object, so it cannot end up in a repr, a pickle, a fingerprint or a log. Error messages name the
    variable, never its value, and any echo of the key in a server's reply is redacted before it is reported.

Failures
    Each request is retried with exponential backoff (``RetryPolicy``) on HTTP 408/409/429/5xx, timeouts and
    connection errors, honouring a ``Retry-After`` header up to the backoff cap. Answers that no retry can fix
    raise ``ApiError`` with ``fatal=True``: 401/403 (key), 404 (URL or model name) and redirects (never followed,
    since a redirected request would carry the key to another address). Other failures (a 400 for one input, a
    request still failing after its retries) are per-request: ``map_concurrently`` records them and carries on,
    and stops the whole run only after ``max_consecutive_failures`` failures in a row (an endpoint that is down).
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Optional

from medrival.core.cards import DEFAULT_API_KEY_ENV as DEFAULT_KEY_ENV
from medrival.core.cards import check_base_url, check_key_env_name
from medrival.core.errors import MedrivalError

__all__ = ["ApiError", "ChatClient", "DEFAULT_KEY_ENV", "RetryPolicy", "api_key", "check_base_url",
           "check_key_env_name", "map_concurrently"]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
FATAL_STATUSES = frozenset({401, 403, 404})  # the same for every request: the key, the URL or the model name
_EXCERPT = 300  # characters of a server's error body kept in a message


class ApiError(MedrivalError):
    """A request that failed. ``status``: the HTTP status (None when no answer came); ``retryable``: worth trying
    again; ``fatal``: every other request would fail the same way, so a run stops at once."""

    def __init__(self, message: str, *, status: Optional[int] = None, retryable: bool = False,
                 fatal: bool = False, retry_after: Optional[float] = None):
        super().__init__(message)
        self.status, self.retryable, self.fatal, self.retry_after = status, retryable, fatal, retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` extra attempts after the first; waits ``backoff_s * 2**attempt`` capped at ``max_backoff_s``."""

    max_retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def __post_init__(self):
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise MedrivalError(f"max_retries must be an integer >= 0; got {self.max_retries!r}.")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise MedrivalError("backoff_s and max_backoff_s must be >= 0.")

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        wait = self.backoff_s * 2 ** attempt
        if retry_after is not None:  # the server knows best when it will take requests again
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff_s)


# ------------------------------------------------------------------------------------------------- settings
def api_key(env_name: str) -> str:
    """The key held by ``$env_name``; a missing or empty variable is an error naming the variable only."""
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise MedrivalError(f"No API key: the environment variable {env_name} is not set or is empty. Export it "
                            f"(`export {env_name}=...`) or name another variable in the card's source.api_key_env; "
                            "a local server that checks no key accepts any value (e.g. EMPTY).")
    if not value.isascii() or not value.isprintable() or any(char.isspace() for char in value):
        # http.client would reject such a header with an error that quotes it, key and all.
        raise MedrivalError(f"The value of the environment variable {env_name} is not a plain API key: it holds "
                            "spaces, line breaks or non-ASCII characters (the value is not shown).")
    return value


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would forward the Authorization header to wherever a redirect points; an API endpoint never
    redirects a POST, so a redirect is reported as the HTTP error it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _retry_after(headers) -> Optional[float]:
    try:
        return float(headers.get("Retry-After")) if headers is not None and headers.get("Retry-After") else None
    except ValueError:  # an HTTP date: rare from APIs, and the exponential backoff still applies
        return None


# ------------------------------------------------------------------------------------------------- the client
class ChatClient:
    """POSTs one-turn chats to ``{base_url}/chat/completions`` and returns the reply text."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = DEFAULT_KEY_ENV,
                 timeout_s: float = 60.0, retry: RetryPolicy = RetryPolicy()):
        """``api_key_env`` None: the server checks no key and none is sent (a local vLLM server)."""
        if not isinstance(model, str) or not model.strip():
            raise MedrivalError(f"model must be the API's model name (e.g. gpt-4o-mini); got {model!r}.")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise MedrivalError(f"timeout_s must be a positive number of seconds; got {timeout_s!r}.")
        self.endpoint = check_base_url(base_url) + "/chat/completions"
        self.model = model.strip()
        self.api_key_env = None if api_key_env is None else check_key_env_name(api_key_env)
        self.timeout_s, self.retry = float(timeout_s), retry
        self._key()  # fail now, before a study starts, not on the first question
        self._opener = urllib.request.build_opener(_NoRedirects())

    def _key(self) -> str:
        return "" if self.api_key_env is None else api_key(self.api_key_env)

    def __repr__(self) -> str:
        return f"ChatClient(endpoint={self.endpoint!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def complete(self, content: str | list[dict], *, max_tokens: int, temperature: float,
                 stop: Optional[threading.Event] = None) -> str:
        """The reply to one user message (a string, or OpenAI content parts), retried as ``self.retry`` says.

        ``stop``: when set by another thread, waiting between retries ends and the request is abandoned.
        """
        payload = {"messages": [{"role": "user", "content": content}], "temperature": temperature,
                   "max_tokens": int(max_tokens)}
        return _redact(_reply_text(self.request(payload, stop), self.endpoint), self._key())

    def request(self, payload: dict, stop: Optional[threading.Event] = None) -> Any:
        """The parsed JSON answer to one chat-completion ``payload`` (the model name is added), retried as
        ``self.retry`` says; ``stop`` as in ``complete``."""
        body = json.dumps({"model": self.model, **payload}).encode("utf-8")
        waiter = stop if stop is not None else threading.Event()  # an Event nobody sets: wait() is a sleep
        attempts, attempt = self.retry.max_retries + 1, 0
        while True:
            try:
                return self._post_once(body)
            except ApiError as error:
                if not error.retryable:
                    raise
                attempt += 1
                if attempt == attempts:
                    raise ApiError(f"{error} (gave up after {attempts} attempts)", status=error.status) from None
                wait = self.retry.delay(attempt - 1, error.retry_after)
                log.info("%s; retrying in %.1f s (attempt %d of %d)", error, wait, attempt + 1, attempts)
                if waiter.wait(wait):
                    raise ApiError(f"request to {self.endpoint} abandoned: the run was stopped") from None

    def _post_once(self, body: bytes) -> Any:
        key = self._key()  # read per request: the key is never kept on the object
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.endpoint, data=body, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise _http_error(self.endpoint, error, key) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)  # URLError wraps the socket error
            text = _redact(f"{type(reason).__name__}: {reason}", key)
            raise ApiError(f"could not reach {self.endpoint} ({text})", retryable=True) from None
        try:
            return json.loads(raw)
        except ValueError:
            excerpt = _redact(raw[:_EXCERPT].decode("utf-8", "replace"), key)
            raise ApiError(f"{self.endpoint} answered HTTP 200 with a body that is not JSON: {excerpt!r}",
                           status=200) from None


def _http_error(endpoint: str, error: urllib.error.HTTPError, key: str) -> ApiError:
    status = error.code
    try:
        excerpt = _redact(error.read(_EXCERPT * 4).decode("utf-8", "replace")[:_EXCERPT], key).strip()
    except OSError:
        excerpt = ""
    message = f"{endpoint} answered HTTP {status}" + (f": {excerpt}" if excerpt else "")
    hints = {401: "check the key in the environment variable", 403: "the key has no access to this model",
             404: "check base_url (it usually ends in /v1) and the model name"}
    if status in hints:
        message += f" ({hints[status]})"
    if 300 <= status < 400:
        message += " (a redirect: give the final address as base_url; redirects are not followed)"
    return ApiError(message, status=status, retryable=status in RETRY_STATUSES or status >= 500,
                    fatal=status in FATAL_STATUSES or 300 <= status < 400, retry_after=_retry_after(error.headers))


# A token, not prose ("the bearer of"): 8+ token characters with at least one digit, '-' or '_'.
_BEARER = re.compile(r"\b(Bearer|bearer|BEARER)\s+(?=[A-Za-z0-9._~+/=-]*[0-9_-])[A-Za-z0-9._~+/=-]{8,}")
REDACTED = "[REDACTED]"


def _redact(text: str, key: str) -> str:
    """``text`` with the key and any ``Bearer <token>`` replaced by ``[REDACTED]``: a server may echo either, in an
    error or in an answer, and both are stored (predictions, failures, reports)."""
    text = text.replace(key, REDACTED) if key else text
    return _BEARER.sub(lambda match: f"{match.group(1)} {REDACTED}", text)


def _reply_text(body: Any, endpoint: str) -> str:
    """The assistant's text in an OpenAI chat completion; content ``None`` (a refusal, a tool call) is ""."""
    try:
        content = body["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ApiError(f"{endpoint} answered without choices[0].message: not an OpenAI chat completion",
                       status=200) from None
    if content is None:
        return ""
    if isinstance(content, list):  # some servers return content parts, as requests send them
        return "".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    if isinstance(content, str):
        return content.strip()
    raise ApiError(f"{endpoint} answered with message content of type {type(content).__name__}", status=200)


# ------------------------------------------------------------------------------------------------- many requests
def map_concurrently(call: Callable[[int, threading.Event], Any], count: int, *, concurrency: int,
                     max_consecutive_failures: Optional[int] = 20) -> tuple[list, list[tuple[int, str]]]:
    """``[call(i, stop) for i in range(count)]`` on ``concurrency`` threads, in input order.

    Returns (results, failures): a request that raised a non-fatal ``ApiError`` has result None and an
    ``(index, message)`` entry in failures (sorted by index). A fatal ``ApiError`` is raised at once, and
    ``max_consecutive_failures`` failures in a row (in completion order; None: never) raise ``MedrivalError``;
    either way ``stop`` is set, queued requests are cancelled and retry waits end. Other exceptions propagate.
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise MedrivalError(f"concurrency (batch_size) must be a positive integer; got {concurrency!r}.")
    results: list = [None] * count
    failures: list[tuple[int, str]] = []
    if count == 0:
        return results, failures
    stop, streak = threading.Event(), 0
    with ThreadPoolExecutor(max_workers=min(concurrency, count), thread_name_prefix="medrival-api") as pool:
        futures = {pool.submit(call, index, stop): index for index in range(count)}
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    results[index], streak = future.result(), 0
                except ApiError as error:
                    if error.fatal:
                        raise
                    failures.append((index, str(error)))
                    log.warning("request %d failed: %s", index, error)
                    streak += 1
                    if max_consecutive_failures and streak >= max_consecutive_failures:
                        raise MedrivalError(f"stopped after {streak} requests in a row failed ({len(failures)} "
                                            f"failed in all); the last: {error}") from None
        except BaseException:
            stop.set()
            for pending in futures:
                pending.cancel()
            raise
    return results, sorted(failures)
