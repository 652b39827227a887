"""Fixtures for the core's tests: a gate that async handlers await, and the
delivery path (the C accelerator or its Python reference) a test runs on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bus import Bus
from bus._core import _accel


class Gate:
    """Opened once from any thread; awaited by coroutines on any loop.

    A ``threading.Event`` cannot be awaited without blocking the handler's
    loop, and an ``asyncio.Event`` cannot be set from the test's thread: a
    gate is both sides, ``open()`` from anywhere, ``await gate.wait()`` in a
    handler.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def open(self) -> None:
        """Let every waiter through, now and later."""
        with self._lock:
            self._opened = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        """Return once ``open()`` has been called; never blocks the loop."""
        event = asyncio.Event()
        with self._lock:
            if self._opened:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()


@pytest.fixture
def gate() -> Iterator[Callable[[], Gate]]:
    """``gate()``: a new ``Gate``, opened at the end of the test so nothing waits on."""
    made: list[Gate] = []

    def make() -> Gate:
        made.append(Gate())
        return made[-1]

    yield make
    for g in made:
        g.open()


@pytest.fixture(params=["c", "python"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """The path under test, switched before the test makes its buses.

    ``"c"``, the extension (``_speedups``; skipped where it was not built),
    or ``"python"``, the pure-Python code it replaces (``BUS_PURE_PYTHON=1``
    does the same for a process).
    """
    wanted = request.param
    if wanted == "c" and not _accel.available():
        pytest.skip("the C accelerator was not built here")
    before = _accel.mode() == "c"
    assert _accel.use(wanted == "c") == (wanted == "c")
    try:
        yield wanted
    finally:
        _accel.use(before)


@pytest.fixture
def quiet(mode: str) -> Iterator[Bus]:
    """An untraced bus, made in ``mode``."""
    with Bus(name="quiet", tracing=False) as b:
        assert b.inspect()["bus"]["speedups"] == mode
        yield b


@pytest.fixture
def on_both_paths() -> Callable[[Callable[[], Any]], tuple[Any, Any]]:
    """``on_both_paths(scenario)``: what it returns run with the accelerator,
    then with the Python code (skipped where the extension was not built)."""
    if not _accel.available():
        pytest.skip("the C accelerator was not built here")

    def run(scenario: Callable[[], Any]) -> tuple[Any, Any]:
        before = _accel.mode() == "c"
        try:
            _accel.use(True)
            accelerated = scenario()
            _accel.use(False)
            return accelerated, scenario()
        finally:
            _accel.use(before)

    return run


@pytest.fixture
def ring_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Traced work kept in the bus's ring alone: no exporter from the environment."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
