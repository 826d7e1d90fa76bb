"""The Hugging Face Hub as medrival uses it: cache look-ups, a quick reachability probe, forced offline loads.

Without a network a bare hub call spends ~23 s in retries before failing, and even a cached checkpoint pays
that wait when the library first asks the Hub for a newer version. So medrival decides before loading:
files already in the cache load in offline mode (no request at all); missing files are fetched only after a
socket probe (a few seconds at most) says the Hub answers. Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class HubFiles:
    """Files a loader reads from one Hub repo: each group is satisfied by any one of its alternatives."""

    repo_id: str
    revision: str | None
    groups: tuple[tuple[str, ...], ...]


def cache_dir() -> Path:
    """The Hub cache in use (``HF_HUB_CACHE`` / ``HF_HOME`` as huggingface_hub resolved them)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_path(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """Path of ``filename`` in the local cache for ``revision`` (default: the cached main branch), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) else None


def missing_groups(files: HubFiles) -> list[tuple[str, ...]]:
    """The file groups of ``files`` with no alternative in the local cache."""
    return [group for group in files.groups
            if not any(cached_path(files.repo_id, name, files.revision) for name in group)]


def all_cached(requirements: list[HubFiles]) -> bool:
    return all(not missing_groups(files) for files in requirements)


def cached_commit(repo_id: str, filename: str, revision: str | None = None) -> str | None:
    """The commit hash of the cached snapshot holding ``filename`` (``snapshots/<commit>/<filename>``)."""
    path = cached_path(repo_id, filename, revision)
    if path is None:
        return None
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


# ----------------------------------------------------------------------------------------------- reachability
def offline_requested() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(flag.strip().lower() in _TRUE for flag in flags)


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _probe_target() -> tuple[str, int]:
    """Host and port a download would connect to first: the HTTPS proxy when one is set, else the endpoint."""
    from urllib.request import proxy_bypass_environment

    url = urlsplit(endpoint())
    names = ("HTTPS_PROXY", "https_proxy") if url.scheme == "https" else ("HTTP_PROXY", "http_proxy")
    proxy = next((os.environ[n] for n in (*names, "ALL_PROXY", "all_proxy") if os.environ.get(n)), None)
    if proxy and url.hostname and proxy_bypass_environment(url.hostname):
        proxy = None  # NO_PROXY lists the endpoint: downloads go there directly
    target = urlsplit(proxy) if proxy else url
    default_port = 443 if target.scheme == "https" else 80
    return target.hostname or "huggingface.co", target.port or default_port


def _connect(host: str, port: int, timeout: float, result: list) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        result.append(None)
    except Exception as error:  # any failure to connect (DNS, refused, blocked) means "not reachable"
        result.append(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def hub_unreachable_reason(timeout: float | None = None) -> str | None:
    """None when the Hub answers a TCP connect within ``timeout`` s (default ``PROBE_TIMEOUT_S``); otherwise why
    it is treated as unreachable.

    The connect runs in a daemon thread because name resolution has no timeout of its own and can hang.
    """
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    if offline_requested():
        return "offline mode is on: HF_HUB_OFFLINE=1; unset it to allow downloads"
    host, port = _probe_target()
    result: list = []
    worker = threading.Thread(target=_connect, args=(host, port, timeout, result), daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        return f"no answer from {host}:{port} within {timeout:g} s"
    return None if result[0] is None else f"could not connect to {host}:{port} ({result[0]})"


@contextlib.contextmanager
def offline_mode():
    """Make huggingface_hub (and the libraries on it) read the local cache only, for the duration.

    huggingface_hub checks this module-level flag on every request, so setting it skips the HEAD calls that
    would otherwise retry for ~23 s without a network. It is process-wide while set; loads are sequential.
    """
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def is_gated_error(error: BaseException) -> bool:
    """True when ``error`` (or anything it was raised from) says the repo is gated or access was refused."""
    from huggingface_hub.errors import GatedRepoError

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, GatedRepoError) or "gated repo" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False
