"""Where a replay sends its traffic: a bus over its control socket, or in this process.

    target = ClientTarget(Client.connect("home"))   # or BusTarget(bus)
    Replayer(plan, target).run()

Both mark what they send as a replay of the recorded span when the bus can:
the control protocol's ``replay_of`` param, or ``bus.replay.replaying``
in-process (see ``docs/traces.md``). A bus without the hook gets the traffic
unmarked, and the report says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from bus.control.protocol import ErrorCode
from bus.replay import replaying

from ._model import NOT_JSON
from ._plan import Outcome, Step

if TYPE_CHECKING:
    from bus import Bus
    from busctl._client import Client

__all__ = ["BusTarget", "ClientTarget", "Refused", "Target"]


class Refused(Exception):
    """The bus refused to fire an event: ``TYPE: message``, whichever target sent it."""


class Target(Protocol):
    """Where a replay sends its traffic."""

    marks: bool | None
    """Whether replayed spans are marked and linked (``None``: not known yet)."""

    def commands(self) -> dict[str, bool]:
        """Command name -> declared read-only."""

    def fire(self, step: Step) -> int:
        """Fire the step's event; return how many listeners match."""

    def execute(self, step: Step, timeout: float) -> Outcome:
        """Execute the step's command and wait for its outcome."""

    def settle(self, timeout: float) -> bool:
        """Wait until the bus is idle (no queued work, no handler running)."""


def _replay_of(step: Step) -> dict[str, str]:
    return {"trace_id": step.span.trace_id, "span_id": step.span.span_id}


class ClientTarget:
    """A bus reached through the control protocol (``busctl._client.Client``)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.marks: bool | None = None

    def commands(self) -> dict[str, bool]:
        """Command name -> declared read-only, from the bus's ``inspect``."""
        return {c["name"]: bool(c.get("readonly")) for c in self.client.inspect()["commands"]}

    def _request(
        self, method: str, params: dict[str, Any], step: Step, timeout: float | None
    ) -> Any:
        from busctl._client import RemoteError

        if self.marks is not False:
            try:
                result = self.client.request(
                    method, {**params, "replay_of": _replay_of(step)}, timeout=timeout
                )
            except RemoteError as exc:
                if exc.code == ErrorCode.INVALID_PARAMS and exc.data.get("param") == "replay_of":
                    self.marks = False  # an older bus: replay unmarked, and say so
                else:
                    raise
            else:
                if self.marks is None:
                    self.marks = True
                return result
        return self.client.request(method, params, timeout=timeout)

    def settle(self, timeout: float) -> bool:
        """Wait until every service is idle with an empty mailbox; ``False`` on timeout.

        Uses the server's ``wait_idle`` method when it has one, else polls
        ``inspect``.
        """
        methods = self.client.info.get("methods", ()) if hasattr(self.client, "info") else ()
        if "wait_idle" in methods:
            result = self.client.request("wait_idle", {"timeout": timeout}, timeout=timeout + 5)
            return bool(result.get("idle", True)) if isinstance(result, dict) else True
        deadline = time.monotonic() + timeout
        delay = 0.001
        quiet = 0
        while time.monotonic() < deadline:
            services = self.client.inspect().get("services", [])
            busy = any(
                s.get("mailbox") or s.get("activity") not in (None, "idle") for s in services
            )
            quiet = 0 if busy else quiet + 1
            if quiet >= 2:  # twice in a row: nothing was in flight between two looks
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return False

    def fire(self, step: Step) -> int:
        """Fire the event through the control endpoint.

        Raises:
            Refused: the bus refused it (a payload that does not convert, say).
        """
        from busctl._client import RemoteError

        params = {"name": step.name, "args": step.args, "kwargs": step.kwargs}
        try:
            result = self._request("fire", params, step, None)
        except RemoteError as exc:
            raise Refused(str(exc)) from exc
        return int(result.get("listeners", 0)) if isinstance(result, dict) else 0

    def execute(self, step: Step, timeout: float) -> Outcome:
        """Execute the command through the control endpoint and wait for it."""
        from busctl._client import RemoteError

        params = {"name": step.name, "args": step.args, "kwargs": step.kwargs, "timeout": timeout}
        try:
            result = self._request("execute", params, step, timeout + 5)
        except RemoteError as exc:
            return Outcome(False, error_type=exc.type or f"RemoteError {exc.code}",
                           error_message=str(exc.data.get("message", exc.message)))  # fmt: skip
        if isinstance(result, dict):
            if result.get("lossy"):
                return Outcome(True, NOT_JSON)
            return Outcome(True, result.get("value"))
        return Outcome(True, result)


def _bus_replaying(step: Step) -> contextlib.AbstractContextManager[Any]:
    # The bus marks the spans it starts inside as replayed, linked to the
    # recorded span (bus.replay, docs/traces.md).
    return replaying(step.span.trace_id, step.span.span_id)


class BusTarget:
    """A ``bus.Bus`` in this process.

    Arguments are converted to the handlers' annotated types and results
    written as JSON exactly as the control endpoint does (``bus.schema``), so
    a replay gives the same outcomes in process as over a socket.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.marks: bool | None = None
        self._patterns: list[str] | None = None

    def commands(self) -> dict[str, bool]:
        """Command name -> declared read-only, from ``bus.inspect()``."""
        return {c["name"]: bool(c.get("readonly")) for c in self.bus.inspect()["commands"]}

    @contextlib.contextmanager
    def _marked(self, step: Step) -> Iterator[None]:
        self.marks = True
        with _bus_replaying(step):
            yield

    def settle(self, timeout: float) -> bool:
        """``bus.wait_idle``."""
        return self.bus.wait_idle(timeout)

    def fire(self, step: Step) -> int:
        """Fire the event on the bus, its declared payload converted first.

        Raises:
            Refused: the bus refused it (a payload that does not convert, say).
        """
        from bus.patterns import pattern_matches
        from bus.schema import convert_event

        if self._patterns is None:
            self._patterns = [item["pattern"] for item in self.bus.inspect()["listeners"]]
        try:
            args, kwargs = convert_event(self.bus, step.name, step.args, step.kwargs)
            with self._marked(step):
                self.bus.fire_event(step.name, *args, **kwargs)
        except Exception as exc:
            raise Refused(f"{type(exc).__qualname__}: {exc}") from exc
        return sum(1 for p in self._patterns if pattern_matches(p, step.name))

    def execute(self, step: Step, timeout: float) -> Outcome:
        """Execute the command on the bus (its arguments converted) and wait for it."""
        from bus.schema import convert_call, to_json

        try:
            args, kwargs = convert_call(self.bus, step.name, step.args, step.kwargs)
            with self._marked(step):
                future = self.bus.execute_command(step.name, *args, **kwargs)
            value = future.result(timeout=timeout)
        except Exception as exc:  # the outcome is what we compare, whatever it is
            return Outcome(False, error_type=type(exc).__qualname__, error_message=str(exc))
        value, lossy = to_json(value)
        return Outcome(True, NOT_JSON if lossy else value)
