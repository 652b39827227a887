"""How the console's tests run busctl, as the real program or in this process (not a test module).

    done = run_busctl(busctl_env(runtime_dir), "call", "say_hello", "Ann")
    assert done.returncode == 0, done.stderr

``attach_to`` points the console in this process at a private runtime dir.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BUSCTL_CTRL_C = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'busctl'; from busctl import main; main()",
]
"""``busctl`` with Python's own Ctrl-C handling, whatever the parent ignores: a
test run from a shell's background job inherits SIGINT ignored."""


def run_busctl(
    env: dict[str, str],
    *args: str,
    cwd: Path = ROOT,
    timeout: float = 60.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m busctl ARGS`` to its end: its exit status and output, as text.

    Args:
        env: its whole environment (``busctl_env(runtime_dir)`` for most tests).
        *args: the command line after ``busctl``.
        cwd: where it runs (the checkout unless said otherwise).
        timeout: how long it may take before the test fails.
        input: its stdin; with none it reads an empty stdin, never the test's.
    """
    return subprocess.run(
        [sys.executable, "-m", "busctl", *args],
        cwd=cwd,
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def attach_to(monkeypatch: pytest.MonkeyPatch, runtime_dir: Path, columns: int = 200) -> None:
    """The console in this process sees only the buses in ``runtime_dir``, in plain text.

    No ``BUS_ADDRESS`` points it elsewhere, and it writes ``columns`` wide
    without colour, so a test reads what a user would.
    """
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", str(columns))
