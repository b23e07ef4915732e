"""Unit tests are pure: any attempt to open a network connection fails the test.

Only AF_UNIX sockets (used by some libraries for local IPC) are allowed.
"""
from __future__ import annotations

import socket

import pytest


class NetworkAccessInUnitTest(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(real):
        def connect(self, address):
            if self.family == getattr(socket, "AF_UNIX", None):
                return real(self, address)
            raise NetworkAccessInUnitTest(f"unit tests must not reach the network (tried {address!r}); "
                                          "move the test to tests/integration or tests/e2e")
        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))
    monkeypatch.setattr(socket, "create_connection", _refuse_create_connection)


def _refuse_create_connection(address, *args, **kwargs):
    raise NetworkAccessInUnitTest(f"unit tests must not reach the network (tried {address!r})")
