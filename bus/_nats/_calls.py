"""Commands whose handler is in another process: the destination, sending, replies.

A remote command is a ``Handler`` whose ``Destination`` is a
``RemoteService``: its ``post`` (on the caller's thread) encodes the call,
registers it and queues the request for the loop, and returns at once; the
reply, on the loop thread, resolves the ``CommandFuture``. Replies come to
one inbox subscription of this process (``_INBOX.ID.*``), matched by token.

A call no process is serving right now (NATS answers "no responders", or
the instance that got it no longer has the command) is sent again, with a
growing pause, until its deadline; then it fails with
``ServiceUnavailableError``. Every call has a deadline, swept on the loop
every ``SWEEP`` seconds, so none is left pending.

The process that takes a call from a bus process acknowledges it, on the
same reply subject and before its answer, with ``[its id, its label]`` (a
JSON array; a reply is an object), once the call has run for
``_serve.ACK_AFTER`` (10 ms) unanswered: so each call that lasts knows who
took it, and when the registry finds that process gone (silent for its
``peer_timeout``, or its final goodbye), its calls fail at once with
``PeerGoneError`` rather than at their deadline. A quick call is answered
without one: the extra message cost more than the call.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .._core._dispatch import settle
from .._core._errors import BusClosedError, BusError, ServiceUnavailableError
from .._core._ratelog import RateLimitedLog
from .._core._worker import current_run, current_worker
from . import _wire as wire
from ._cycles import waits_of

if TYPE_CHECKING:
    from .._core._future import CommandFuture
    from .._core._router import Handler
    from ._link import NatsLink

__all__ = ["SWEEP", "Call", "Calls", "PeerGoneError", "RemoteService", "chain_of"]

log = logging.getLogger("bus.nats")

#: Seconds between two looks at the deadlines.
SWEEP = 0.05
#: The longest pause between two tries of a call no one answered.
MAX_PAUSE = 0.5
#: Refusal statuses of ``RemoteService.post``.
NOT_JSON, CLOSED = 11, 12
_perf = time.perf_counter
_tls = threading.local()  # the reason of the last NOT_JSON refusal, on the caller's thread


def chain_of(future: CommandFuture | None) -> list[Any]:
    """The chain of remote waits the work of ``future`` belongs to (maybe empty).

    A call from another process carries its chain; a local call made by a
    handler inherits the chain of the command its waiter runs (``via``).
    """
    for _ in range(64):
        if future is None:
            return []
        if future.chain is not None:
            return list(future.chain)
        future = future.via
    return []


class RemoteService:
    """A service in other processes, as a ``Destination`` and a node of the wait graph.

    Attributes:
        name: the service's name.
        token: its name as a subject token (``POOL~ID`` for another
            process's pool).
    """

    shared = True
    #: Never stuck from here: its threads are in other processes, whose
    #: waits the chain of each call describes.
    concurrency = 1 << 30
    workers: tuple[Any, ...] = ()
    remote = True

    def __init__(self, link: NatsLink, name: str, token: str) -> None:
        self.name = name
        self.token = token
        self._link = link

    def post(self, item: tuple[Any, Any, Any, Any, Any]) -> int:
        return self._link.calls.send(self, item)

    def call_refused(self, status: int) -> BusError:
        if status == NOT_JSON:
            error: BusError = getattr(_tls, "error", None) or BusError("not JSON")
            _tls.error = None
            return error
        return BusClosedError(f"bus {self._link.bus.name!r} is closed")

    def delivery_refused(self, status: int, event: str, handler: Handler) -> BusError:
        return self.call_refused(status)

    def __repr__(self) -> str:
        return f"<RemoteService {self.name!r}>"


class PeerGoneError(ServiceUnavailableError):
    """A call whose process took it and then left the bus, before replying.

    ``delivered`` is always true: the handler may have run, all or in part.

    Attributes:
        process: the service and the process that took the call
            (``greeter@host:5027``).
        why: how the bus knows it is gone (``left the bus``, ``was silent for 5 s``).
    """

    def __init__(self, command: str, service: str, timeout: float, process: str, why: str) -> None:
        super().__init__(command, service, timeout, True)
        self.process = process
        self.why = why
        self.args = (
            f"{command}: {process} took the call, then {why} before replying "
            "(its handler may have run)",
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.command, self.service, self.timeout, self.process, self.why))


class _NotJSON(BusError, TypeError):
    """Arguments of a call to another process that have no JSON form."""


class Call:
    """One call in flight to another process."""

    __slots__ = (
        "body",
        "deadline",
        "future",
        "handler",
        "headers",
        "refused",
        "sent",
        "service",
        "subject",
        "taker",
        "ticket",
        "tries",
    )

    def __init__(
        self,
        handler: Handler,
        service: RemoteService,
        future: CommandFuture,
        ticket: Any,
        subject: str,
        body: bytes,
        headers: dict[str, str] | None,
        deadline: float,
    ) -> None:
        self.handler = handler
        self.service = service
        self.future = future
        self.ticket = ticket
        self.subject = subject
        self.body = body
        self.headers = headers
        self.deadline = deadline
        self.sent = _perf()
        self.tries = 1
        self.refused = False  # the last try found no one serving the command
        self.taker: tuple[str, str] | None = None  # (id, label) of the process that took it


class Calls:
    """The calls this process has in flight to others."""

    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self.timeout = link.remote_timeout
        self.inbox = f"_INBOX.{link.process_id}."
        self.pending: dict[str, Call] = {}
        self.sub: Any = None  # the inbox's subscription, once made
        self._deadlines: deque[tuple[float, str]] = deque()
        self._tokens = itertools.count(1)
        self.retries = 0
        self.late = 0
        self.expired = 0
        self.orphaned = 0  # failed because the process that took them is gone
        self._log = RateLimitedLog(log)

    # -- the caller's thread ----------------------------------------------------------

    def send(self, service: RemoteService, item: tuple[Any, Any, Any, Any, Any]) -> int:
        """``RemoteService.post``: send the call; 0, or why not."""
        handler, args, kwargs, future, ticket = item
        link = self.link
        if link.closing:
            return CLOSED
        try:
            body = wire.encode_typed({"args": args, "kwargs": kwargs} if kwargs else {"args": args})
        except (TypeError, ValueError, RecursionError):
            why = wire.unsendable(handler.name, args, kwargs, handler.binder.signature)
            _tls.error = _NotJSON(why)
            return NOT_JSON
        token = str(next(self._tokens))
        headers: dict[str, str] | None = None
        hub = link.hub() if ticket is not None else None
        ids = None
        if hub is not None:  # traced: the remote SERVER span hangs under our CLIENT span
            ids = hub.remote_call(ticket, link.wire_attributes(service.token, handler.name))
        if ids is not None:
            headers = {}
            wire.inject(headers, *ids)
        worker = current_run.get() or current_worker()  # an async handler's task, or a thread
        if worker is not None and worker.runtime.bus is link.bus:
            # A handler may wait on this: say who, so that a cycle through
            # other processes is found by the process it comes back to.
            node = f"{worker.runtime.name}@{link.label}"
            chain = [*chain_of(worker.future), [node, link.process_id, token]]
            if headers is None:
                headers = {}
            headers[wire.CHAIN] = wire.encode(chain).decode()
        subject = link.subjects.command(service.token, handler.name)
        deadline = time.monotonic() + self.timeout
        call = Call(handler, service, future, ticket, subject, body, headers, deadline)
        future.set_running_or_notify_cancel()  # sent: too late to cancel
        self.pending[token] = call
        self._deadlines.append((deadline, token))
        link.loop.publish(
            subject, body, self.inbox + token, headers, lambda exc: self._not_sent(token)
        )
        return 0

    # -- the loop ----------------------------------------------------------------------

    async def on_reply(self, msg: Any) -> None:
        """A reply (or NATS's "no responders") to one of our calls."""
        token = msg.subject[len(self.inbox) :]
        call = self.pending.get(token)
        data = msg.data
        if data[:1] == b"[":  # "taken": [id, label] of the process that took it
            if call is not None:
                self._taken(token, call, data)
            return
        if call is None:
            self.late += 1  # after its deadline, or a second reply
            return
        headers = msg.headers
        if headers and (headers.get("Status") == "503" or headers.get(wire.STATUS) == "missing"):
            self._refused(token, call)
            return
        del self.pending[token]
        result: Any = None
        error: BaseException | None = None
        try:
            body = wire.decode(msg.data)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            error = BusError(f"{call.handler.name}: a reply that is not JSON: {exc}")
        else:
            if "error" in body:
                error = wire.rebuild_error(body["error"])
            else:
                # As the class the handler's result is annotated with, when
                # this process has it; else the JSON form, as it came.
                result = body.get("result")
                typed = getattr(call.handler.fn, "typed", None)  # a RemoteStub's
                if typed is not None:
                    result = typed(result)
        self._finish(call, result, error)

    def _taken(self, token: str, call: Call, data: bytes) -> None:
        try:
            process_id, label = wire.decode(data)
        except (ValueError, TypeError):
            return  # not one of ours: the call just waits for its reply
        if not isinstance(process_id, str) or not isinstance(label, str):
            return
        call.taker = (process_id, label)
        gone = self.link.registry.gone.get(process_id)
        if gone is not None:  # it left before its acknowledgement was read
            self._orphan(token, call, gone[1])

    def peer_gone(self, process_id: str, why: str) -> None:
        """Fail at once the calls that process ``process_id`` took (the loop)."""
        for token, call in list(self.pending.items()):
            if call.taker is not None and call.taker[0] == process_id:
                self._orphan(token, call, why)

    def _orphan(self, token: str, call: Call, why: str) -> None:
        if call.taker is None or self.pending.pop(token, None) is None:
            return
        label = call.taker[1]
        self.orphaned += 1
        service = call.service.name
        error = PeerGoneError(call.handler.name, service, self.timeout, f"{service}@{label}", why)
        self._finish(call, None, error)

    def _refused(self, token: str, call: Call) -> None:
        call.refused = True
        pause = min(MAX_PAUSE, 0.02 * (2 ** min(call.tries, 10)))
        if time.monotonic() + pause < call.deadline:
            self.link.loop.loop.call_later(pause, self._again, token)

    def _not_sent(self, token: str) -> None:
        # The connection would not take it (closed, or its buffer full
        # while the server is away): as good as no one answering.
        call = self.pending.get(token)
        if call is not None:
            self._refused(token, call)

    def _again(self, token: str) -> None:
        call = self.pending.get(token)
        if call is None or self.link.closing:
            return
        self.retries += 1
        call.tries += 1
        call.refused = False
        self.link.loop.publish(
            call.subject, call.body, self.inbox + token, call.headers,
            lambda exc: self._not_sent(token),
        )  # fmt: skip

    def sweep(self) -> None:
        """Fail the calls past their deadline (the loop, every ``SWEEP`` s)."""
        now = time.monotonic()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, token = deadlines.popleft()
            call = self.pending.pop(token, None)
            if call is None:
                continue
            self.expired += 1
            error = ServiceUnavailableError(
                call.handler.name, call.service.name, self.timeout, not call.refused
            )
            self._finish(call, None, error)

    def fail_all(self, error_text: str) -> int:
        """Fail every call in flight with ``BusClosedError`` (closing)."""
        failed = 0
        while self.pending:
            try:
                token = next(iter(self.pending))
            except (StopIteration, RuntimeError):  # changed under us: look again
                continue
            call = self.pending.pop(token, None)
            if call is not None:
                self._finish(call, None, BusClosedError(error_text))
                failed += 1
        return failed

    def _finish(self, call: Call, result: Any, error: BaseException | None) -> None:
        elapsed = _perf() - call.sent
        handler = call.handler
        handler.stats.finish(elapsed, error)
        future = call.future
        if future.gave_up:
            handler.stats.late_reply()
        hub = self.link.hub()
        if hub is not None and call.ticket is not None:
            hub.call_replied(call.ticket, handler, error, result, elapsed)
        settle(future, result, error)

    # -- who waits (any thread) ---------------------------------------------------------------

    def waited_on(self, token: str) -> bool:
        """Whether a thread or an async task of this bus waits on the call ``token`` now."""
        call = self.pending.get(token)
        if call is None:
            return False
        future = call.future
        return any(
            waited is future for rt in self.link.bus.runtimes() for waited in waits_of(rt)[0]
        )
