"""Test-suite guards: no network, Hugging Face offline, caches in a temporary folder."""
from __future__ import annotations

import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


class NetworkBlocked(RuntimeError):
    pass


def _blocked(*args, **kwargs):
    raise NetworkBlocked("tests must not touch the network")


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Any outbound connection fails loudly; unix sockets (used by some libraries locally) stay allowed."""
    original_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _blocked()
        return original_connect(self, address)

    socket.socket.connect = guarded_connect
    original_create = socket.create_connection
    socket.create_connection = _blocked
    yield
    socket.socket.connect = original_connect
    socket.create_connection = original_create


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    os.environ["MEDRIVAL_CACHE_DIR"] = str(tmp_path_factory.mktemp("medrival-cache"))
    yield
