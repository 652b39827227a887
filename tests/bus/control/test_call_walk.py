"""The walk of a console's call through the bus does each step once.

A console's ``fire`` (``busctl emit``) asks the router for the event's
listeners once, and a console's ``execute`` (``busctl call``) binds the
arguments to the handler's signature once. The counts are taken on the real
router and binder, wrapped so that they still run, of a real
``Bus(control=True)`` spoken to over its socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bus import Bus, CommandNotFoundError, Service, command, listener
from bus._core._binding import Binder
from bus._core._contract import convert_arguments
from bus._core._router import Handler
from tests.bus.control.control_client import LineClient

pytestmark = pytest.mark.timeout(30)


class Lights(Service):
    name = "lights"

    def on_start(self) -> None:
        self.heard: list[tuple[str, Any]] = []
        self.all_heard = threading.Event()

    @command("lights.set")
    def set_level(self, room: str, level: int = 100) -> dict[str, Any]:
        return {"room": room, "level": level}

    @listener("lights.changed")
    def on_changed(self, room: str) -> None:
        self.heard.append(("exact", room))

    @listener("lights.*")
    def on_any(self, room: str) -> None:
        self.heard.append(("glob", room))
        self.all_heard.set()


@pytest.fixture(params=["untraced", "traced and watched"])
def served(request: pytest.FixtureRequest, serve: Callable[..., Bus]) -> Bus:
    traced = request.param != "untraced"
    bus = serve("walk", Lights(), tracing=traced)
    if traced:  # the observed path: the hub sees the fire and every delivery
        bus.watch(lambda activity: None)
    return bus


def _counting(calls: list[Any], real: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    return counted


def test_a_console_fire_asks_for_the_listeners_once(
    served: Bus, client: LineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lights = served._runtimes["lights"].service
    asked: list[Any] = []
    router = served.router
    monkeypatch.setattr(router, "listeners_for", _counting(asked, router.listeners_for))

    assert client.result("fire", {"name": "lights.changed", "args": ["hall"]}) == {"listeners": 2}
    assert lights.all_heard.wait(10)  # type: ignore[union-attr]
    assert served.wait_idle(timeout=10)

    assert asked == [("lights.changed",)]
    assert lights.heard == [("exact", "hall"), ("glob", "hall")]  # type: ignore[union-attr]


def test_a_console_execute_binds_its_arguments_once(
    served: Bus, client: LineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[Any] = []
    monkeypatch.setattr(Binder, "check", _counting(checked, Binder.check))

    params = {"name": "lights.set", "args": ["hall"], "kwargs": {"level": 40}}
    reply = client.result("execute", params)

    assert reply == {"value": {"room": "hall", "level": 40}}
    assert len(checked) == 1, checked


def test_a_console_execute_that_does_not_bind_is_refused_once_with_the_signature(
    served: Bus, client: LineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[Any] = []
    monkeypatch.setattr(Binder, "check", _counting(checked, Binder.check))

    error = client.error("execute", {"name": "lights.set", "kwargs": {"levle": 40}})

    assert error["code"] == -32002
    assert "room" in error["message"]
    assert "level" in error["message"]
    assert error["data"]["signature"] == "(room: str, level: int = 100) -> dict[str, Any]"
    assert len(checked) == 1, checked


# -- a handler swapped between conversion and dispatch ----------------------------------


@pytest.fixture
def bus() -> Iterator[Bus]:
    b = Bus(name="swap", tracing=False)
    try:
        b.add_service(Lights())
        yield b
    finally:
        b.close()


def _swap(bus: Bus, name: str, fn: Callable[..., Any]) -> Handler:
    """Replace command ``name``'s handler by ``fn`` (on the pool); the new handler."""
    old = bus.router.command(name)
    old_registration = next(r for r in bus._runtimes["lights"].registrations if r.handler is old)
    old_registration.dispose()
    bus.register_command(name, fn)
    new = bus.router.command(name)
    assert new is not old
    return new


def test_arguments_converted_for_a_handler_run_on_that_handler_without_binding_again(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = bus.router.command("lights.set")
    args, kwargs = convert_arguments(handler, ["hall"], {"level": "40"})
    checked: list[Any] = []
    monkeypatch.setattr(Binder, "check", _counting(checked, Binder.check))

    result = bus.execute_converted(handler, args, kwargs).result(timeout=10)

    assert result == {"room": "hall", "level": 40}  # "40" was converted to the int it declares
    assert checked == []


def test_a_handler_swapped_after_conversion_is_bound_and_converted_again(bus: Bus) -> None:
    handler = bus.router.command("lights.set")
    args, kwargs = convert_arguments(handler, ["hall"], {})

    def set_scene(room: str, scene: str) -> str:  # a stub with another signature
        return f"{room}: {scene}"

    _swap(bus, "lights.set", set_scene)

    with pytest.raises(TypeError, match=r"lights\.set\(room: str, scene: str\).*scene"):
        bus.execute_converted(handler, args, kwargs)


def test_a_swapped_handler_gets_arguments_converted_to_its_own_types(bus: Bus) -> None:
    handler = bus.router.command("lights.set")
    args, kwargs = convert_arguments(handler, ["7"], {})  # room: str keeps "7"
    seen: list[Any] = []

    def by_number(room: int, level: int = 100) -> int:
        seen.append(room)
        return room

    _swap(bus, "lights.set", by_number)

    assert bus.execute_converted(handler, args, kwargs).result(timeout=10) == 7
    assert seen == [7]  # the new handler's int, not the str converted for the old one


def test_a_handler_gone_after_conversion_is_not_found(bus: Bus) -> None:
    handler = bus.router.command("lights.set")
    args, kwargs = convert_arguments(handler, ["hall"], {})
    registration = next(r for r in bus._runtimes["lights"].registrations if r.handler is handler)
    registration.dispose()

    with pytest.raises(CommandNotFoundError, match=r"lights\.set"):
        bus.execute_converted(handler, args, kwargs)


def test_a_stub_set_after_conversion_answers_and_is_checked(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A console stubs the command while a call waits between conversion and dispatch."""
    handler = bus.router.command("lights.set")
    args, kwargs = convert_arguments(handler, ["hall"], {"level": "40"})
    bus.stubs.add("lights.set", returns={"stubbed": True})
    checked: list[Any] = []
    monkeypatch.setattr(Binder, "check", _counting(checked, Binder.check))

    assert bus.execute_converted(handler, args, kwargs).result(timeout=10) == {"stubbed": True}
    assert len(checked) == 1  # bound again, for the stand-in that ran

    bus.stubs.remove("lights.set")
    assert bus.execute_converted(handler, args, kwargs).result(timeout=10) == {
        "room": "hall",
        "level": 40,
    }
    assert len(checked) == 1  # the real handler again: what it was converted for
