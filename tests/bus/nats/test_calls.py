"""Commands across processes: results, errors as the issue lists them, deadlines, close."""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from bus import (
    Bus,
    BusClosedError,
    CommandNotFoundError,
    RemoteError,
    Service,
    ServiceUnavailableError,
    command,
)
from tests.bus.nats.conftest import Host

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def greeter(host: Callable[..., Host]) -> Host:
    return host("greeter")


def test_a_command_of_another_process_returns_its_result(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greet", 5)
    assert bus.execute_command("greet", "Ann").result(timeout=5) == "Hello, Ann!"
    assert bus.execute_command("greet", "Bo", punctuation="?").result(timeout=5) == "Hello, Bo?"
    assert bus.execute_command("greeter.where").result(timeout=5) == greeter.label


def test_an_unknown_command_fails_at_once_with_suggestions_from_every_process(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greet", 5)
    with pytest.raises(CommandNotFoundError) as caught:
        bus.execute_command("greeet", "Ann")
    assert caught.value.suggestions == ["greet"]


def test_arguments_that_do_not_bind_fail_at_once_from_the_remote_signature(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greet", 5)
    with pytest.raises(TypeError, match=r"greet\(name: str, \*, punctuation: str = '!'\) -> str"):
        bus.execute_command("greet")
    with pytest.raises(TypeError, match="unexpected keyword argument 'punctuaton'"):
        bus.execute_command("greet", "Ann", punctuaton="?")
    handler = bus.router.command("greet")
    assert handler.binder.text() == "(name: str, *, punctuation: str = '!') -> str"
    assert handler.doc == "Greet someone."


def test_arguments_that_are_not_json_fail_at_once(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greet", 5)
    with pytest.raises(TypeError, match=r"^greet: argument 'name' \(an object\) has no JSON form"):
        bus.execute_command("greet", object())
    with pytest.raises(TypeError, match=r"argument 'punctuation' \(a lock\)"):
        bus.execute_command("greet", "Ann", punctuation=threading.Lock())


def test_a_handler_error_comes_back_with_its_type_message_and_remote_traceback(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greeter.fail", 5)
    with pytest.raises(KeyError) as caught:
        bus.execute_command("greeter.fail", "key").result(timeout=5)
    assert caught.value.args == ("nope",)
    text = "".join(traceback.format_exception(caught.value))
    assert f"Remote traceback, in {greeter.label}" in text
    assert 'raise KeyError("nope")' in text
    with pytest.raises(ValueError, match="other") as value_error:
        bus.execute_command("greeter.fail", "other").result(timeout=5)
    assert str(value_error.value) == "other"


def test_an_error_type_of_an_importable_module_comes_back_as_itself(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greeter.fail", 5)
    with pytest.raises(json.JSONDecodeError) as caught:  # json.decoder's, not a builtin
        bus.execute_command("greeter.fail", "json").result(timeout=5)
    error = caught.value
    assert type(error) is json.JSONDecodeError
    assert (error.msg, error.doc, error.pos) == (
        "Expecting property name enclosed in double quotes",
        "{oops",
        1,
    )
    assert "json.loads" in error.remote_traceback  # type: ignore[attr-defined]


def test_an_error_type_not_imported_here_comes_back_as_a_remote_error(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greeter.fail", 5)
    with pytest.raises(RemoteError) as caught:
        bus.execute_command("greeter.fail", "local").result(timeout=5)
    assert caught.value.type_name == "__main__.HostOnlyError"
    assert caught.value.message == "made here"
    assert "HostOnlyError" in caught.value.remote_traceback
    stats = {c["name"]: c for c in bus.inspect()["commands"]}
    assert "greeter.fail" not in stats  # the caller lists only its own commands


def test_an_error_whose_str_raises_comes_back_and_the_service_serves_on(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greeter.fail", 5)
    with pytest.raises(RemoteError) as caught:
        bus.execute_command("greeter.fail", "unprintable").result(timeout=5)
    assert caught.value.type_name == "__main__.UnprintableError"
    assert caught.value.message == "<exception str() failed>"
    assert bus.execute_command("greet", "Ada").result(timeout=5) == "Hello, Ada!"


def test_a_call_past_its_deadline_fails_with_service_unavailable(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus(remote_timeout=0.5)
    assert bus.wait_for_command("greeter.sleep", 5)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        bus.execute_command("greeter.sleep", 1).result(timeout=5)
    assert time.monotonic() - started < 2
    assert caught.value.delivered
    assert "took the call and sent no reply within 0.5 s" in str(caught.value)


def test_close_fails_the_calls_in_flight_and_leaves_nothing_pending(
    nats_bus: Callable[..., Bus], greeter: Host
) -> None:
    bus = nats_bus()
    assert bus.wait_for_command("greeter.sleep", 5)
    future = bus.execute_command("greeter.sleep", 1)
    bus.close(timeout=0.5)
    with pytest.raises(BusClosedError):
        future.result(timeout=5)
    assert bus._nats is not None
    assert not bus._nats.calls.pending
    assert not [t for t in threading.enumerate() if t.name.startswith(f"bus:{bus.name}/")]


def test_local_commands_never_leave_the_process(nats_bus: Callable[..., Bus]) -> None:
    calls: dict[str, int] = {"here": 0, "there": 0}

    class Here(Service):
        name = "counter"

        def __init__(self, where: str) -> None:
            super().__init__()
            self.where = where

        @command("count")
        def count(self) -> str:
            calls[self.where] += 1
            return self.where

    there = nats_bus()
    there.add_service(Here("there"))
    here = nats_bus()
    here.add_service(Here("here"))
    assert there._nats is not None
    assert here._nats is not None
    there._nats.settle()
    assert here.wait_for_command("count", 5)
    assert {here.execute_command("count").result(timeout=5) for _ in range(50)} == {"here"}
    assert calls == {"here": 50, "there": 0}
    assert here.inspect()["nats"]["retries"] == 0


def test_replicas_of_a_service_share_its_calls(nats_bus: Callable[..., Bus]) -> None:
    served: list[str] = []
    lock = threading.Lock()

    class Worker(Service):
        name = "worker"

        def __init__(self, where: str) -> None:
            super().__init__()
            self.where = where

        @command("work")
        def work(self) -> str:
            with lock:
                served.append(self.where)
            return self.where

    for where in ("one", "two"):
        b = nats_bus()
        b.add_service(Worker(where))
        assert b._nats is not None
        b._nats.settle()
    caller = nats_bus()
    assert caller.wait_for_command("work", 5)
    futures = [caller.execute_command("work") for _ in range(200)]
    results = [f.result(timeout=10) for f in futures]
    assert sorted(set(results)) == ["one", "two"]
    assert results.count("one") > 20
    assert results.count("two") > 20


def test_a_result_that_is_not_json_is_a_type_error(nats_bus: Callable[..., Bus]) -> None:
    class Odd(Service):
        name = "odd"

        @command("odd.thing")
        def thing(self) -> Any:
            return object()

    server = nats_bus()
    server.add_service(Odd())
    caller = nats_bus()
    assert caller.wait_for_command("odd.thing", 5)
    with pytest.raises(TypeError, match=r"odd.thing: its result \(object\) has no JSON form"):
        caller.execute_command("odd.thing").result(timeout=5)
