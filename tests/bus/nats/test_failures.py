"""When the server or a process goes away: one clear error, retries, replicas, drops counted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus, Service, ServiceUnavailableError, TransportError, listener
from tests.bus.nats.conftest import Host, NatsServer, free_port

pytestmark = pytest.mark.timeout(60)


def test_no_server_at_start_is_one_clear_line_within_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    before = {t.name for t in threading.enumerate()}
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(TransportError) as caught:
        Bus(name="lonely", nats=url)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message == f"cannot join NATS at {url}: no server answered"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    # The one line is the error: no warning per failed attempt beside it
    # (a process without logging set up prints warnings on stderr).
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    leftover = {t.name for t in threading.enumerate()} - before
    assert not [name for name in leftover if name.startswith("bus:lonely/")]


def test_a_bad_url_is_one_clear_line() -> None:
    with pytest.raises(TransportError, match="cannot join NATS at"):
        Bus(name="bad", nats="nats://127.0.0.1:notaport")


def test_a_bus_without_a_server_never_imports_the_transport() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bus\n"
        "b = bus.Bus(name='local')\n"
        "b.close()\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'nats'\n"
        "          or m.startswith('bus._nats')]\n"
        "print(sorted(loaded))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def own_server() -> Any:
    server = NatsServer()
    try:
        yield server
    finally:
        server.stop()


def test_a_server_restart_delays_calls_but_never_makes_them_unknown(
    own_server: NatsServer,
) -> None:
    class Echo(Service):
        name = "echo"

        def __init__(self) -> None:
            super().__init__()
            self.heard: list[str] = []
            self.event = threading.Event()

        from bus import command as _command

        @_command("echo")
        def echo(self, text: str) -> str:
            return text

        @listener("ping")
        def on_ping(self, text: str) -> None:
            self.heard.append(text)
            self.event.set()

    server_bus = Bus(name="restart", nats=own_server.url)
    caller = Bus(name="restart", nats=own_server.url, remote_timeout=15)
    try:
        echo = Echo()
        server_bus.add_service(echo)
        assert caller.wait_for_command("echo", 5)
        assert caller.execute_command("echo", "before").result(timeout=5) == "before"
        own_server.stop()
        assert caller._nats is not None
        assert wait_until(lambda: not caller._nats.loop.connected)  # type: ignore[union-attr]
        # Sent while the server is away: it is retried, never "unknown".
        future = caller.execute_command("echo", "during")
        time.sleep(0.5)  # the server stays away a while (the scenario, not a sync)
        own_server.start()
        assert future.result(timeout=15) == "during"
        assert caller.execute_command("echo", "after").result(timeout=5) == "after"
        # The subscriptions came back: events flow again.
        caller.fire_event("ping", "again")
        assert echo.event.wait(10)
        assert echo.heard == ["again"]
        assert caller.inspect()["nats"]["reconnects"] >= 1
    finally:
        caller.close()
        server_bus.close()


def test_closing_after_the_server_went_away_leaves_no_task_behind(
    own_server: NatsServer,
) -> None:
    # nats-py cancels its subscriptions' tasks on close without letting them end;
    # a loop closed under them printed "Task was destroyed" and a traceback each.
    import asyncio

    class Pinged(Service):
        name = "pinged"

        @listener("ping")
        def on_ping(self) -> None:
            pass

    bus = Bus(name="orphan", nats=own_server.url)
    bus.add_service(Pinged())
    assert bus._nats is not None
    loop = bus._nats.loop
    own_server.stop()
    assert wait_until(lambda: not loop.connected)
    bus.close()
    assert not loop.thread.is_alive()
    assert [t for t in asyncio.all_tasks(loop.loop) if not t.done()] == []


def test_a_killed_host_makes_its_calls_fail_by_the_deadline_or_move_to_a_replica(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    first = host("greeter")
    bus = nats_bus(remote_timeout=1.5)
    assert bus.wait_for_command("greeter.where", 5)
    assert bus.execute_command("greeter.where").result(timeout=5) == first.label
    first.kill()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        bus.execute_command("greeter.where").result(timeout=10)
    assert 1.0 < time.monotonic() - started < 4
    assert not caught.value.delivered
    assert "no instance of service 'greeter' answered within 1.5 s" in str(caught.value)
    second = host("greeter")
    assert bus.execute_command("greeter.where").result(timeout=5) == second.label


def test_a_listener_that_cannot_keep_up_counts_what_nats_dropped(
    nats_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    got: list[int] = []
    slow = nats_bus(mailbox_size=1)  # its subscription keeps at most 64 waiting
    firer = nats_bus()
    slow.register_listener("flood", lambda i: got.append(i))
    assert slow._nats is not None
    assert firer._nats is not None
    slow._nats.settle()
    hold = threading.Event()
    held = threading.Event()

    def block() -> None:  # the receiving loop stops reading
        held.set()
        hold.wait(20)

    slow._nats.loop.call_soon(block)
    assert held.wait(5)
    with caplog.at_level(logging.WARNING, logger="bus.nats"):
        for i in range(3000):
            firer.fire_event("flood", i)
        firer._nats.settle()
        time.sleep(0.3)  # the server delivers to the blocked reader meanwhile (scenario)
        hold.set()
        slow._nats.settle()
        assert slow.wait_idle(10)
    entry = next(e for e in slow.inspect()["listeners"] if e["pattern"] == "flood")
    assert entry["dropped"] > 0
    assert slow.inspect()["nats"]["slow_consumer_drops"] > 0
    assert entry["deliveries"] + entry["dropped"] == 3000
    assert len(got) == entry["deliveries"]
    drops = [r for r in caplog.records if "does not keep up" in r.getMessage()]
    assert len(drops) <= 3  # counted, not logged once per message


def test_a_process_that_vanishes_leaves_the_registry_after_its_heartbeats_stop(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    from bus import CommandNotFoundError

    # Gone after 1 s of silence (Bus(peer_timeout=...)), not the default 5 s.
    gone = host("greeter", peer_timeout=1.0)
    bus = nats_bus(peer_timeout=1.0)
    assert bus.wait_for_command("greet", 5)
    assert bus._nats is not None
    gone.kill()  # no goodbye: only the silence tells
    registry = bus._nats.registry
    assert registry.wait(lambda: not registry.peers, 5)
    assert bus.inspect()["nats"]["peers_expired"] == 1
    with pytest.raises(CommandNotFoundError):
        bus.execute_command("greet", "Ann")


def test_a_process_that_closes_leaves_the_registry_at_once(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    leaving = host("greeter")
    bus = nats_bus()
    assert bus.wait_for_command("greet", 5)
    assert bus._nats is not None
    leaving.stop()
    registry = bus._nats.registry
    assert registry.wait(lambda: not registry.peers, 3)
    assert bus.inspect()["nats"]["peers_expired"] == 0


def test_bus_nats_url_joins_and_an_empty_url_never_does(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUS_NATS_URL", nats_server.url)
    with Bus(name="env") as joined:
        assert joined._nats is not None
        assert joined.inspect()["nats"]["url"] == nats_server.url
    with Bus(name="env", nats="") as alone:
        assert alone._nats is None
        assert "nats" not in alone.inspect()
        assert not alone.wait_for_command("anything", 0.1)


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (float("inf"), ValueError), ("5", TypeError)],
)
def test_remote_timeout_must_be_a_positive_number(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="remote_timeout"):
        Bus(name="bad", remote_timeout=value)
