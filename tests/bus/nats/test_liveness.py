"""A process that goes: the calls it had taken fail when it leaves, not at their deadline.

Each call is acknowledged by the process that takes it; when the registry
finds that process gone (silent for ``peer_timeout``, or its final goodbye),
the calls it took fail at once with ``ServiceUnavailableError``
(``delivered``), naming it and why. Calls taken by a live replica, and the
answers of a process that closes cleanly, are untouched.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus, CommandFuture, ServiceUnavailableError
from tests.bus.nats.conftest import Host, NatsServer

pytestmark = pytest.mark.timeout(60)

#: A short liveness setting for the tests: a killed process is gone within
#: about a second, and a live one, beating five times a second, is not taken
#: for gone on a loaded machine.
SHORT = 1.0


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Ask ``condition`` again until it holds (a bus across processes settles through
    the network: there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def taker_of(bus: Bus, future: CommandFuture) -> str | None:
    """The label of the process that acknowledged the call of ``future``, if one did."""
    assert bus._nats is not None
    for call in list(bus._nats.calls.pending.values()):
        if call.future is future and call.taker is not None:
            return call.taker[1]
    return None


def peer_id(bus: Bus, label: str) -> str:
    assert bus._nats is not None
    return next(p.id for p in bus._nats.registry.snapshot() if p.label == label)


@pytest.mark.timeout(30)
def test_a_call_taken_by_a_killed_process_fails_once_it_is_silent_for_peer_timeout(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    doomed = host("greeter", peer_timeout=SHORT)
    bus = nats_bus(remote_timeout=30, peer_timeout=SHORT)
    assert bus.wait_for_command("greeter.nap", 5)
    future = bus.execute_command("greeter.nap", 60)
    assert wait_until(lambda: taker_of(bus, future) == doomed.label)
    doomed.kill()  # SIGKILL: no goodbye, only the silence tells
    killed = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        future.result(timeout=10)  # long before the 30 s deadline
    assert time.monotonic() - killed < 10
    error = caught.value
    assert error.delivered
    assert str(error) == (
        f"greeter.nap: greeter@{doomed.label} took the call, then was silent for "
        f"{SHORT:g} s before replying (its handler may have run)"
    )
    assert (error.command, error.service) == ("greeter.nap", "greeter")
    assert error.process == f"greeter@{doomed.label}"  # type: ignore[attr-defined]
    nats = bus.inspect()["nats"]
    assert nats["orphaned"] == 1
    assert nats["peers_expired"] == 1
    assert nats["calls_in_flight"] == 0
    assert nats["peer_timeout"] == SHORT


@pytest.mark.timeout(40)
def test_calls_taken_by_a_live_replica_are_untouched_when_another_dies(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    first = host("greeter", peer_timeout=SHORT)
    second = host("greeter", peer_timeout=SHORT)
    bus = nats_bus(remote_timeout=30, peer_timeout=SHORT)
    assert bus._nats is not None
    registry = bus._nats.registry
    assert registry.wait(lambda: len(registry.peers) == 2, 5)
    futures: list[tuple[CommandFuture, str]] = []
    # Calls until each replica has taken one (NATS picks one member of the group).
    while {label for _, label in futures} != {first.label, second.label}:
        assert len(futures) < 40, "NATS never gave a call to each replica"
        future = bus.execute_command("greeter.nap", 2.0)
        assert wait_until(lambda f=future: taker_of(bus, f) is not None)  # type: ignore[misc]
        label = taker_of(bus, future)
        assert label is not None
        futures.append((future, label))
    first.kill()
    for future, label in futures:
        if label == second.label:
            assert future.result(timeout=30) == second.label  # untouched
    failed = 0
    for future, label in futures:
        if label != first.label:
            continue
        error = future.exception(timeout=10)  # answered before it died, or failed now
        if error is None:
            assert future.result() == first.label
            continue
        failed += 1
        assert isinstance(error, ServiceUnavailableError)
        assert error.delivered
        assert f"greeter@{first.label} took the call, then was silent" in str(error)
    assert failed >= 1, "the killed replica answered every call it took (2 s each)"
    # The survivor still serves; the dead one's unanswered calls were counted.
    assert bus.execute_command("greeter.where").result(timeout=10) == second.label
    assert bus.inspect()["nats"]["orphaned"] == failed


def test_a_process_that_closes_answers_the_calls_it_took_before_it_leaves(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    leaving = host("greeter", peer_timeout=SHORT)
    bus = nats_bus(remote_timeout=30, peer_timeout=SHORT)
    assert bus.wait_for_command("greeter.nap", 5)
    future = bus.execute_command("greeter.nap", 1.0)
    assert wait_until(lambda: taker_of(bus, future) == leaving.label)
    leaving.stop()  # close(): says goodbye at once, then finishes the nap and answers
    assert future.result(timeout=10) == leaving.label
    assert bus._nats is not None
    registry = bus._nats.registry
    assert registry.wait(lambda: not registry.peers and not registry.leaving, 5)
    nats = bus.inspect()["nats"]
    assert nats["orphaned"] == 0
    assert nats["peers_expired"] == 0


def test_a_final_goodbye_fails_at_once_the_calls_its_process_took_and_did_not_answer(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    from bus._nats import _wire as wire

    busy = host("greeter")
    bus = nats_bus(remote_timeout=30)
    assert bus.wait_for_command("greeter.nap", 5)
    assert bus._nats is not None
    future = bus.execute_command("greeter.nap", 3.0)
    assert wait_until(lambda: taker_of(bus, future) == busy.label)
    # Its final goodbye, as a process sends once its answers are out: this
    # one is sent for it while its handler still runs, so the call has no answer.
    # (From another connection: a process does not hear its own messages.)
    forger = nats_bus()
    assert forger._nats is not None
    bye = wire.encode({"id": peer_id(bus, busy.label), "final": True})
    forger._nats.loop.publish(forger._nats.subjects.reg_bye, bye)
    with pytest.raises(ServiceUnavailableError) as caught:
        future.result(timeout=2.5)  # before the nap ends, long before the deadline
    assert str(caught.value) == (
        f"greeter.nap: greeter@{busy.label} took the call, then left the bus before replying "
        "(its handler may have run)"
    )
    assert caught.value.delivered
    assert bus.inspect()["nats"]["orphaned"] == 1
    busy.kill()


@pytest.mark.timeout(30)
def test_a_peer_that_beats_slower_is_given_three_of_its_beats(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    # The host beats every 0.5 s (a fifth of its 2.5 s); this bus would take
    # 0.25 s of silence for gone, but waits for three of the host's beats.
    slow = host("greeter", peer_timeout=2.5)
    bus = nats_bus(remote_timeout=30, peer_timeout=0.25)
    assert bus.wait_for_command("greeter.nap", 5)
    assert bus._nats is not None
    registry = bus._nats.registry
    peer = registry.peers[peer_id(bus, slow.label)]
    assert peer.beat == 0.5
    seen: set[float] = set()

    def beats() -> bool:
        known = registry.peers.get(peer.id)
        if known is not None:
            seen.add(known.last_seen)
        return len(seen) >= 4

    assert wait_until(beats)  # three gaps of 0.5 s, each longer than 0.25 s
    assert bus.inspect()["nats"]["peers_expired"] == 0
    future = bus.execute_command("greeter.nap", 60)
    assert wait_until(lambda: taker_of(bus, future) == slow.label)
    slow.kill()
    with pytest.raises(ServiceUnavailableError, match=r"then was silent for 1\.5 s before"):
        future.result(timeout=10)
    assert bus.inspect()["nats"]["peers_expired"] == 1


def test_peer_timeout_sets_the_beat_interval(nats_server: NatsServer, bus_name: str) -> None:
    with Bus(name=bus_name, nats=nats_server.url, peer_timeout=2) as two:
        assert two._nats is not None
        assert two._nats.beat_interval == 0.4
        assert two.inspect()["nats"]["peer_timeout"] == 2.0
    with Bus(name=bus_name, nats=nats_server.url, peer_timeout=0.1) as short:
        assert short._nats is not None
        assert short._nats.beat_interval == 0.05  # the floor
    with Bus(name=bus_name, nats=nats_server.url) as default:
        assert default._nats is not None
        assert default._nats.beat_interval == 1.0
        assert default.inspect()["nats"]["peer_timeout"] == 5.0
    # At most once a second: `busctl list --nats` listens a second for beats.
    with Bus(name=bus_name, nats=nats_server.url, peer_timeout=60) as long:
        assert long._nats is not None
        assert long._nats.beat_interval == 1.0


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "peer_timeout must be a positive number of seconds, not 0"),
        (-1.5, ValueError, "peer_timeout must be a positive number of seconds, not -1.5"),
        (math.inf, ValueError, "peer_timeout must be a positive number of seconds, not inf"),
        (math.nan, ValueError, "peer_timeout must be a positive number of seconds, not nan"),
        ("5", TypeError, "peer_timeout must be a number, not str"),
        (True, TypeError, "peer_timeout must be a number, not bool"),
    ],
)
def test_peer_timeout_must_be_a_positive_number(
    value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        Bus(name="bad", peer_timeout=value)
    assert str(caught.value) == message


def test_a_closing_process_stays_out_of_the_tables_until_it_is_gone(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    from bus._nats import _wire as wire

    closing = host("greeter")
    bus = nats_bus()
    assert bus.wait_for_command("greet", 5)
    assert bus._nats is not None
    registry = bus._nats.registry
    forger = nats_bus()  # speaks for the host (a process does not hear itself)
    assert forger._nats is not None
    subjects = forger._nats.subjects
    process = peer_id(bus, closing.label)
    forger._nats.loop.publish(subjects.reg_bye, wire.encode({"id": process}))
    assert registry.wait(lambda: process in registry.leaving, 5)
    assert "greet" not in {h.name for h in bus.router.remote_commands()}  # nothing new for it
    # A record from it now (say it reconnected while closing) does not bring it back...
    record = {**registry.leaving[process].record, "seq": 10**6}
    forger._nats.loop.publish(subjects.reg_state, wire.encode(record))
    forger._nats.settle()
    bus._nats.settle()
    assert process not in registry.peers
    # ...and its final goodbye ends it.
    forger._nats.loop.publish(subjects.reg_bye, wire.encode({"id": process, "final": True}))
    assert registry.wait(lambda: process not in registry.leaving, 5)
    assert registry.gone[process] == (closing.label, "left the bus")
    closing.kill()


@pytest.mark.timeout(30)
def test_a_process_stopped_longer_than_peer_timeout_fails_its_calls_then_comes_back(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    paused = host("greeter", peer_timeout=SHORT)
    bus = nats_bus(remote_timeout=30, peer_timeout=SHORT)
    assert bus.wait_for_command("greeter.nap", 5)
    future = bus.execute_command("greeter.nap", 1.0)
    assert wait_until(lambda: taker_of(bus, future) == paused.label)
    os.kill(paused.process.pid, signal.SIGSTOP)  # alive, but silent: a stuck process
    try:
        with pytest.raises(ServiceUnavailableError, match=f"then was silent for {SHORT:g} s"):
            future.result(timeout=10)
    finally:
        os.kill(paused.process.pid, signal.SIGCONT)
    # It beats again: back on the bus, under the same label; its answer came too late.
    assert bus.wait_for_command("greeter.nap", 10)
    assert bus.execute_command("greeter.where").result(timeout=10) == paused.label
    assert wait_until(lambda: bus.inspect()["nats"]["late_replies"] == 1)
    assert bus.inspect()["nats"]["orphaned"] == 1


def test_only_a_call_that_lasts_is_acknowledged(
    nats_bus: Callable[..., Bus], host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An acknowledgement costs a message: a quick call is answered without one."""
    from bus._nats._calls import Calls

    taken: list[str] = []
    seen = Calls._taken

    def record(self: Calls, token: str, call: Any, data: bytes) -> None:
        taken.append(call.handler.name)
        seen(self, token, call, data)

    monkeypatch.setattr(Calls, "_taken", record)
    host("greeter")
    bus = nats_bus()
    assert bus.wait_for_command("greeter.nap", 5)
    for _ in range(20):
        assert bus.execute_command("greet", "Ada").result(timeout=5) == "Hello, Ada!"
    assert taken == []
    future = bus.execute_command("greeter.nap", 0.5)
    assert wait_until(lambda: taker_of(bus, future) is not None)
    future.result(timeout=5)
    assert taken == ["greeter.nap"]
