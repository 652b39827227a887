"""Errors the bus can see are raised at once; handler errors come through the future."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

import pytest

from bus import (
    Bus,
    BusClosedError,
    BusError,
    CommandExistsError,
    CommandNotFoundError,
    Service,
    command,
    listener,
)
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


def test_unknown_command_raises_at_once_with_suggestions(bus: Bus) -> None:
    bus.register_command("say_hello", lambda name: name)
    bus.register_command("say_goodbye", lambda name: name)

    with pytest.raises(CommandNotFoundError) as info:
        bus.execute_command("say_helo", "Alice")

    assert info.value.name == "say_helo"
    assert info.value.suggestions[0] == "say_hello"
    assert "did you mean 'say_hello'" in str(info.value)
    assert isinstance(info.value, BusError)
    assert isinstance(info.value, LookupError)


def test_unknown_command_without_close_matches(bus: Bus) -> None:
    with pytest.raises(CommandNotFoundError) as info:
        bus.execute_command("zzz")
    assert info.value.suggestions == []
    assert str(info.value) == "no command named 'zzz'"


def test_arguments_that_do_not_bind_raise_type_error_naming_the_command(bus: Bus) -> None:
    ran = threading.Event()

    def greet(name: str, *, loud: bool = False) -> str:
        ran.set()
        return name

    bus.register_command("greet", greet)

    with pytest.raises(TypeError, match=r"greet\(name: str, \*, loud: bool = False\)"):
        bus.execute_command("greet")
    with pytest.raises(TypeError, match=r"greet.*too many positional"):
        bus.execute_command("greet", "a", "b")
    with pytest.raises(TypeError, match=r"greet.*unexpected keyword"):
        bus.execute_command("greet", "a", shout=True)
    wait_idle(bus)
    assert not ran.is_set()
    stats = bus.inspect()["commands"][0]
    assert (stats["calls"], stats["errors"], stats["in_flight"]) == (0, 0, 0)


def test_bound_method_arguments_are_checked_without_self(bus: Bus) -> None:
    class S(Service):
        @command("s.one")
        def one(self, x: int) -> int:
            return x

    bus.add_service(S())
    assert bus.execute_command("s.one", 1).result(timeout=5) == 1
    with pytest.raises(TypeError, match=r"s\.one\(x: int\) -> int"):
        bus.execute_command("s.one", 1, 2)


def test_closed_bus_refuses_every_verb(bus: Bus) -> None:
    bus.register_command("cmd", lambda: None)
    bus.close()
    with pytest.raises(BusClosedError, match="closed"):
        bus.execute_command("cmd")
    with pytest.raises(BusClosedError):
        bus.fire_event("evt")
    with pytest.raises(BusClosedError):
        bus.register_command("other", lambda: None)
    with pytest.raises(BusClosedError):
        bus.register_listener("evt", lambda: None)


def test_duplicate_command_raises_command_exists(bus: Bus) -> None:
    class Owner(Service):
        @command("taken")
        def taken(self) -> None: ...

    bus.add_service(Owner())

    with pytest.raises(CommandExistsError) as info:
        bus.register_command("taken", lambda: None)
    assert (info.value.name, info.value.owner) == ("taken", "owner")
    assert "already registered by owner" in str(info.value)


def test_service_whose_command_is_taken_fails_to_start(bus: Bus) -> None:
    bus.register_command("dup", lambda: 1)

    class Dup(Service):
        @command("dup")
        def dup(self) -> int:
            return 2

    with pytest.raises(CommandExistsError):
        bus.add_service(Dup())
    assert bus.execute_command("dup").result(timeout=5) == 1


def test_invalid_names_and_patterns_are_refused(bus: Bus) -> None:
    with pytest.raises(ValueError, match="invalid command name"):
        bus.register_command("bad name", lambda: None)
    with pytest.raises(ValueError, match="invalid event pattern"):
        bus.register_listener("lights..on", lambda: None)
    with pytest.raises(ValueError, match="invalid event name"):
        bus.fire_event("lights.*")
    with pytest.raises(TypeError):
        bus.register_command("ok", 42)  # type: ignore[arg-type]


class Boom(ValueError):
    pass


def _deep_failure(value: int) -> int:
    raise Boom(f"bad value {value}")


def test_handler_exception_comes_through_the_future_with_type_and_traceback(
    bus: Bus,
) -> None:
    class Checker(Service):
        @command("check")
        def check(self, value: int) -> int:
            return _deep_failure(value)

    bus.add_service(Checker())
    future = bus.execute_command("check", 7)

    with pytest.raises(Boom, match="bad value 7") as info:
        future.result(timeout=5)
    assert type(info.value) is Boom
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "check" in frames
    assert "_deep_failure" in frames
    assert isinstance(future.exception(timeout=1), Boom)
    stats = bus.inspect()["commands"][0]
    assert stats["errors"] == 1
    assert stats["last_error"] == "Boom: bad value 7"


def test_listener_exception_is_isolated_counted_and_logged(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[int] = []

    class Mixed(Service):
        @listener("tick")
        def bad(self, n: int) -> None:
            raise RuntimeError(f"listener broke on {n}")

        @listener("tick")
        def good(self, n: int) -> None:
            got.append(n)

    bus.add_service(Mixed())
    with caplog.at_level(logging.ERROR, logger="bus"):
        for n in range(3):
            bus.fire_event("tick", n)  # the firer never sees the failure
        wait_idle(bus)

    assert got == [0, 1, 2]
    bad = next(entry for entry in bus.inspect()["listeners"] if entry["handler"].endswith("bad"))
    assert (bad["deliveries"], bad["errors"]) == (3, 3)
    assert bad["last_error"] == "RuntimeError: listener broke on 2"
    failures = [r for r in caplog.records if "failed on event 'tick'" in r.getMessage()]
    # Rate limited: logged once a second at most, with the traceback.
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "listener broke on 0" in str(failures[0].exc_info[1])
    service = next(s for s in bus.inspect()["services"] if s["name"] == "mixed")
    assert (service["handled"], service["failed"]) == (6, 3)


def test_errors_pickle_round_trip() -> None:
    import pickle

    from bus import DeadlockError, MailboxFullError

    errors: list[Any] = [
        CommandNotFoundError("x", ["y"]),
        CommandExistsError("x", "svc"),
        DeadlockError(["a", "b", "a"]),
        MailboxFullError("svc", 3),
        BusClosedError("closed"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
