"""Fixtures for the console's tests: private runtime dirs and ``busctl run`` subprocesses.

Every test that sees a bus does so under its own ``XDG_RUNTIME_DIR`` (a short
directory under /tmp, since Unix socket paths are limited to ~100 bytes), so
tests never see each other's buses or a developer's.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from bus import Service, command

ROOT = Path(__file__).resolve().parents[2]


def short_runtime_dir() -> Path:
    """A fresh private directory under /tmp to use as ``XDG_RUNTIME_DIR``."""
    return Path(tempfile.mkdtemp(prefix="bct", dir="/tmp"))


def _busctl_env(runtime_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a ``busctl`` subprocess attached to ``runtime_dir``."""
    env = {k: v for k, v in os.environ.items() if k not in {"BUS_ADDRESS", "FORCE_COLOR"}}
    env.update(
        XDG_RUNTIME_DIR=str(runtime_dir),
        NO_COLOR="1",
        COLUMNS="200",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class BusProcess:
    """A ``busctl run`` subprocess; ``lines`` gets its stdout line by line."""

    def __init__(
        self, args: list[str], runtime_dir: Path, *, own_group: bool = False, **env: str
    ) -> None:
        """``own_group``: in a process group of its own, as a terminal's job is, so
        ``interrupt()`` can send SIGINT to it and its children as Ctrl-C does."""
        self.runtime_dir = runtime_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "busctl", "run", *args],
            cwd=ROOT,
            env=_busctl_env(runtime_dir, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0 if own_group else None,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, True)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    def _read(self, stream: IO[str], into: list[str], announce: bool) -> None:
        for line in stream:
            into.append(line)
            if announce:
                self.lines.put(line)
        if announce:
            self.lines.put("")  # EOF

    def wait_listening(self, timeout: float = 30.0) -> str:
        """Wait for the ``listening on PATH`` line; return PATH."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"busctl run did not start: {self.stderr}") from None
            if not line:
                self.process.wait(5)
                raise AssertionError(
                    f"busctl run exited {self.process.returncode}: {''.join(self.stderr)}"
                )
            if " listening on " in line:
                return line.split(" listening on ", 1)[1].split(" (pid", 1)[0]

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C at its terminal: SIGINT to its whole process group (``own_group``)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.stop(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        reap(self.process, self._readers)
        return code

    def kill(self) -> None:
        reap(self.process, self._readers)


def reap(process: subprocess.Popen[str], readers: list[threading.Thread]) -> None:
    """Kill ``process`` if it still runs, let its reader threads finish, close its pipes."""
    if process.poll() is None:
        process.kill()
        process.wait(10)
    for reader in readers:
        reader.join(5)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A private ``XDG_RUNTIME_DIR`` for one test, removed after it."""
    path = short_runtime_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_bus() -> Iterator[Callable[..., BusProcess]]:
    """``start_bus(args, runtime_dir, **env)``: a ``busctl run`` that is listening."""
    started: list[BusProcess] = []

    def start(args: list[str], runtime_dir: Path, **env: str) -> BusProcess:
        process = BusProcess(args, runtime_dir, **env)
        started.append(process)
        process.wait_listening()
        return process

    yield start
    for process in started:
        with contextlib.suppress(Exception):
            process.stop(signal.SIGTERM, timeout=15)
        process.kill()


@pytest.fixture
def busctl_env() -> Callable[..., dict[str, str]]:
    """``busctl_env(runtime_dir, **extra)``: the environment for a ``busctl`` subprocess."""
    return _busctl_env


_PROBE = textwrap.dedent(
    '''
    """Services for busctl's tests: failures, slowness, and a mark when stopped."""
    import os
    import pathlib
    import threading

    from bus import Service, command, listener


    class Probe(Service):
        name = "probe"

        def on_stop(self) -> None:
            mark = os.environ.get("PROBE_STOP_FILE")
            if mark:
                pathlib.Path(mark).write_text("stopped")

        @command("probe.fail")
        def fail(self, why: str = "boom") -> None:
            """Always raise ValueError(why)."""
            raise ValueError(why)

        @command("probe.echo")
        def echo(self, *args: object, **kwargs: object) -> dict:
            """Return the arguments."""
            return {"args": list(args), "kwargs": kwargs}

        @command("probe.wait")
        def wait(self, seconds: float) -> str:
            """Block for a while."""
            threading.Event().wait(seconds)
            return "done"

        @listener("probe.*")
        def on_any(self, *args: object, **kwargs: object) -> None:
            pass


    class Other(Service):
        name = "other"

        @listener("probe.ping")
        def on_ping(self, *args: object, **kwargs: object) -> None:
            pass
    '''
)


@pytest.fixture(scope="session")
def probe_source() -> str:
    """A services module for tests: ``probe.fail``, ``probe.echo``, ``probe.wait``..."""
    return _PROBE


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A private ``XDG_RUNTIME_DIR`` shared by one test module."""
    path = short_runtime_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def bus_process(home: Path) -> Iterator[BusProcess]:
    """``busctl run sample_services probe.py --name test`` in ``home``, for one module."""
    probe = home / "probe.py"
    probe.write_text(_PROBE)
    process = BusProcess(["sample_services", str(probe), "--name", "test"], home)
    try:
        process.wait_listening()
        yield process
    finally:
        process.stop(signal.SIGTERM, timeout=15)
        process.kill()


class Fragile(Service):
    """Its ``on_start`` outlasts ``add_service``'s timeout, then raises."""

    name = "fragile"

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def on_start(self) -> None:
        self.go.wait(30)
        raise RuntimeError("no database at db.local:5432")

    @command("fragile.ping")
    def ping(self) -> str:
        return "pong"


def _fail_a_service(bus: Any) -> None:
    """Add service ``fragile`` to ``bus`` and return once the bus shows it ``failed``.

    Its ``on_start`` raises after ``add_service`` gave up waiting, so the bus
    keeps it, marked failed with its error (what a service whose thread died
    looks like too).
    """
    fragile = Fragile()
    with pytest.raises(TimeoutError):
        bus.add_service(fragile, timeout=0.01)
    fragile.go.set()
    pause = threading.Event()
    states: dict[str, str] = {}
    for _ in range(4000):  # nothing to wait on from outside: look until the bus says so
        states = {s["name"]: s["state"] for s in bus.inspect()["services"]}
        if states.get("fragile") == "failed":
            return
        pause.wait(0.005)
    raise AssertionError(f"fragile never failed: {states}")


@pytest.fixture
def fail_a_service() -> Callable[[Any], None]:
    """``fail_a_service(bus)``: a service ``fragile`` on ``bus``, marked failed."""
    return _fail_a_service
