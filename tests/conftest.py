"""Test-suite guards: no network, Hugging Face offline, caches in a temporary folder."""
from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


class NetworkBlocked(RuntimeError):
    pass


_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def _is_loopback(address) -> bool:
    """True for (host, port, ...) addresses on this machine (127.0.0.0/8, ::1, localhost): local stub servers."""
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return False
    host = address[0].strip("[]")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:  # any other host name: it would need a DNS lookup, which is network too
        return False


def _blocked(*args, **kwargs):
    raise NetworkBlocked("tests must not touch the network")


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Any outbound connection fails loudly, except to loopback addresses (local stub servers in tests); unix
    sockets (used by some libraries locally) stay allowed."""
    original_connect = socket.socket.connect
    original_create = socket.create_connection

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            _blocked()
        return original_connect(self, address)

    def guarded_create(address, *args, **kwargs):
        if not _is_loopback(address):
            _blocked()
        return original_create(address, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.create_connection = guarded_create
    yield
    socket.socket.connect = original_connect
    socket.create_connection = original_create


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    os.environ["MEDRIVAL_CACHE_DIR"] = str(tmp_path_factory.mktemp("medrival-cache"))
    yield


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The built-in demo study, run once for the whole session (about 4 minutes on 2 cores): the runner's tests and
    the browser test of its report share it. Returns (store folder, StudyRun, results frame)."""
    from medrival.study.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run = run_demo(out)
    return out, run, run.frame()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (two threads mostly wait for each other); restored afterwards.
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache for this test (huggingface_hub read HF_HUB_CACHE at import, so set both)."""
    from huggingface_hub import constants

    from medrival.models.weights import WEIGHTS_ENV

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    return cache
