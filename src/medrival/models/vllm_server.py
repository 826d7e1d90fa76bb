"""The vLLM server a model with ``engine: vllm`` talks to: found at its address, or started from a configured
command and stopped when medrival exits.

vLLM pins its own torch, so it lives in its own environment and is reached over its OpenAI-compatible HTTP API.
medrival never installs or imports it. The default address is loopback (``http://127.0.0.1:8000/v1``); a command
such as ``/opt/vllm-env/bin/vllm serve llava-hf/llava-1.5-7b-hf --host 127.0.0.1 --port 8000`` is run when nothing
answers there. Readiness is ``GET {url}/models`` answering with the served model; a server that does not come up
within ``start_timeout_s``, or exits, is an error that quotes the end of its log.
"""
from __future__ import annotations

import atexit
import json
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medrival.core.errors import ConfigError, MedrivalError

DEFAULT_URL = "http://127.0.0.1:8000/v1"
_POLL_S = 0.5
_LOG_TAIL = 1500


@dataclass(frozen=True)
class VLLMSettings:
    """Where the server is and how to start it: ``url`` (its /v1 base), ``command`` (run when nothing answers;
    None: connect only), ``served_model`` (the name it serves; None: the card's checkpoint), ``concurrency``
    (requests in flight), ``start_timeout_s``, ``request_timeout_s`` and ``api_key_env`` (None: no key)."""

    url: str = DEFAULT_URL
    command: str | None = None
    served_model: str | None = None
    concurrency: int = 16
    start_timeout_s: float = 900.0
    request_timeout_s: float = 300.0
    api_key_env: str | None = None

    @classmethod
    def from_mapping(cls, values: dict | None) -> "VLLMSettings":
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown vllm setting(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}.")
        return cls(**values)

    def start_hint(self, model: str) -> str:
        """The command that should serve ``model`` here: the configured one, or the usual ``vllm serve`` line."""
        if self.command:
            return self.command
        host, port = _host_port(self.url)
        return f"vllm serve {model} --host {host} --port {port}"


def _host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or (443 if parsed.scheme == "https" else 80)


def served_models(url: str, timeout_s: float = 5.0) -> list[str]:
    """The model names ``GET {url}/models`` lists; ``OSError``/``URLError`` when nothing answers there."""
    with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=timeout_s) as response:
        body = json.loads(response.read())
    try:
        return [str(entry["id"]) for entry in body["data"]]
    except (KeyError, TypeError) as error:
        raise MedrivalError(f"{url}/models answered without data[].id ({type(error).__name__}: {error}): not an "
                            "OpenAI-compatible model list; is this a vLLM server?") from None


class _Started:
    """Servers this process started, stopped (whole process group) when it exits."""

    def __init__(self):
        self.processes: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.lock = threading.Lock()
        atexit.register(self.stop_all)

    def stop_all(self) -> None:
        for process, _ in self.processes.values():
            stop_process(process)
        self.processes.clear()


_STARTED = _Started()


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after ``grace_s``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ensure_server(settings: VLLMSettings, model: str) -> str:
    """The served model name to use at ``settings.url``: the server there is used when it answers, else it is
    started from ``settings.command``. Errors name the address and the command that should have started it."""
    try:
        return _pick_model(served_models(settings.url), settings, model)
    except (OSError, urllib.error.URLError) as error:
        reason = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
    if not settings.command:
        raise MedrivalError(f"no vLLM server answers at {settings.url} ({reason}). Start it in its own environment "
                            f"first: `{settings.start_hint(model)}` (or give model_options.<model>.vllm.command so "
                            "medrival starts it).")
    with _STARTED.lock:
        if settings.url not in _STARTED.processes or _STARTED.processes[settings.url][0].poll() is not None:
            _STARTED.processes[settings.url] = _start(settings)
        process, log = _STARTED.processes[settings.url]
    return _pick_model(_wait_ready(settings, process, log, model), settings, model)


def _start(settings: VLLMSettings) -> tuple[subprocess.Popen, Path]:
    log = Path(tempfile.mkstemp(prefix="medrival-vllm-", suffix=".log")[1])
    try:
        process = subprocess.Popen(shlex.split(settings.command), stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as error:
        raise MedrivalError(f"could not start the vLLM server for {settings.url} with `{settings.command}`: "
                            f"{error}") from None
    return process, log


def _wait_ready(settings: VLLMSettings, process: subprocess.Popen, log: Path, model: str) -> list[str]:
    deadline = time.monotonic() + settings.start_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MedrivalError(f"the vLLM server started with `{settings.command}` exited with code "
                                f"{process.returncode} before answering at {settings.url}; its log ends:\n"
                                f"{_tail(log)}")
        try:
            return served_models(settings.url, timeout_s=2.0)
        except (OSError, urllib.error.URLError):
            time.sleep(_POLL_S)
    stop_process(process)
    raise MedrivalError(f"the vLLM server started with `{settings.command}` did not answer at {settings.url} "
                        f"within {settings.start_timeout_s:g} s (start_timeout_s); its log ends:\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def _pick_model(names: list[str], settings: VLLMSettings, model: str) -> str:
    wanted = settings.served_model or model
    if wanted in names:
        return wanted
    if settings.served_model is None and len(names) == 1:
        return names[0]  # one model served under another name (vllm serve --served-model-name)
    raise MedrivalError(f"the vLLM server at {settings.url} serves {names}, not {wanted!r}; set "
                        "model_options.<model>.vllm.served_model to the name it serves.")


def describe(settings: VLLMSettings) -> dict[str, Any]:
    return {"url": settings.url, "command": settings.command, "served_model": settings.served_model}
