"""What this process serves to the others: its commands, its listeners, its events.

Inbound calls arrive on one subscription per local service (queue group
``q``); each is checked (the command is here, the arguments bind), recorded
as a SERVER span under the caller's CLIENT span, and posted to the
service's mailbox like a local call; the future's done-callback, on the
service's thread, encodes the reply and hands it to the loop.

Each local listener has its own subscription to its pattern's coarse
subject, filtered exactly here. A listener of a service listens in that
service's queue group for it, so replicas of the service hear each event
once; ``broadcast=True`` and listeners of the shared pool (which belong to
one process) listen on their own.

Events fired here are delivered here without the network and published
for the others (``outlet``). The publication names, in ``Bus-Served``, the
queue groups of the listeners this process delivered to itself: a replica
elsewhere in one of those groups drops it, so each listener hears each
event once, wherever it was fired.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context

from .._core._contract import convert_arguments
from .._core._errors import BusClosedError, DeadlockError, error_text
from .._core._future import CommandFuture
from .._core._patterns import pattern_matches
from .._core._ratelog import RateLimitedLog
from .._observe._hub import swap_caller
from . import _wire as wire
from ._subjects import listener_group

if TYPE_CHECKING:
    from .._core._router import Handler
    from ._link import NatsLink

__all__ = ["Listening", "Serving"]

log = logging.getLogger("bus.nats")

#: Seconds a call from another process may run before this process says it
#: took it. A process that dies sooner leaves the call to its deadline.
ACK_AFTER = 0.01


class Listening:
    """One local listener's subscription."""

    __slots__ = ("active", "group", "handler", "sub", "subject")

    def __init__(self, handler: Handler, subject: str, group: str | None) -> None:
        self.handler = handler
        self.subject = subject
        self.group = group
        self.sub: Any = None
        self.active = True


class Serving:
    """This process's side of calls and events from (and to) the other processes."""

    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self.services: dict[str, Any] = {}  # token -> subscription
        self.listening: dict[Handler, Listening] = {}
        self.by_sub: dict[int, Listening] = {}  # id(subscription) -> its listener
        self.unsent = 0  # events whose arguments were not JSON
        self.malformed = 0
        self.missing = 0
        self.slow_drops = 0  # messages NATS dropped because this process lagged
        self._groups: dict[Handler, str | None] = {}
        self._counts: dict[str, int] = {}
        self._log = RateLimitedLog(log)

    # -- groups ---------------------------------------------------------------------

    def group_of(self, handler: Handler) -> str | None:
        """The queue group of a local listener, or ``None`` when every instance hears all."""
        group = self._groups.get(handler, "")
        if group == "":
            runtime: Any = handler.destination
            if handler.broadcast or getattr(runtime, "elastic", True):
                group = None
            else:
                group = listener_group(runtime.name, handler.name, handler.qualname)
            if len(self._groups) > 65536:
                self._groups.clear()
            self._groups[handler] = group
        return group

    def registry_changed(self) -> None:
        self._counts = {}

    # -- events fired here (the firer's thread) -----------------------------------------

    def outlet(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        event: Any,
        listeners: tuple[Handler, ...],
    ) -> int:
        """``BusCore.outlet``: publish the event for the other processes."""
        link = self.link
        try:
            body = wire.encode_typed({"args": args, "kwargs": kwargs} if kwargs else {"args": args})
        except (TypeError, ValueError, RecursionError):
            self.unsent += 1
            why = wire.unsendable(f"event {name!r}", args, kwargs, None)
            self._log.warning("%s; it reached only this process", why)
            return 0
        headers: dict[str, str] | None = None
        served: list[str] = []
        if listeners:
            served = [g for g in map(self.group_of, listeners) if g is not None]
            if served:
                headers = {wire.SERVED: ",".join(served)}
        subject = link.subjects.event_prefix + name
        hub = link.hub() if event is not None else None
        ids = None
        if hub is not None:  # traced: the CONSUMER spans elsewhere hang under our PRODUCER
            ids = hub.remote_event(event, link.event_attributes(subject, None))
        if ids is not None:
            if headers is None:
                headers = {}
            wire.inject(headers, *ids)
        link.loop.publish(subject, body, "", headers)
        count = self._counts.get(name)
        if count is None:
            count = self._counts[name] = link.registry.remote_listeners(name, set(served))
        return count

    # -- calls from other processes (the loop) ---------------------------------------------

    async def on_request(self, msg: Any) -> None:
        link = self.link
        bus = link.bus
        token, _, name = msg.subject[len(link.subjects.service_prefix) :].partition(".")
        reply = msg.reply
        if not reply:
            return  # a message, not a request: there is no one to answer
        handler = bus.router.local_command(name)
        if handler is None or link.token_of(handler.destination) != token or link.leaving:
            # Not (or no longer) here: the caller tries again, maybe elsewhere.
            self.missing += 1
            link.loop.publish(reply, b"", "", {wire.STATUS: "missing"})
            return
        try:
            body = wire.decode(msg.data) if msg.data else {}
            args = body.get("args", [])
            kwargs = body.get("kwargs", {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise ValueError("'args' must be an array and 'kwargs' an object")
        except (ValueError, AttributeError):
            self.malformed += 1
            error = ValueError(f"{name}: a call that is not {{'args': [...], 'kwargs': {{...}}}}")
            self._answer_error(reply, error, "400")
            return
        try:
            # JSON in, the handler's annotated types out (a dict becomes its
            # dataclass, "heat" its Mode), checked before anything runs.
            converted, kwargs = convert_arguments(handler, args, kwargs)
        except TypeError as exc:  # InvalidArgumentError is one
            self._answer_error(reply, exc, "400")
            return
        except Exception as exc:  # a validator of the handler's types that broke
            self._answer_error(reply, exc, "500")
            return
        args = list(converted)
        headers = msg.headers or {}
        future = CommandFuture(handler, bus._waits)
        chain = _chain(headers.get(wire.CHAIN))
        future.chain = chain
        observer = bus.observer
        ticket = None
        if observer is not None:
            ctx = wire.extract(headers)
            attached = otel_context.attach(ctx) if ctx is not None else None
            origin = headers.get(wire.ORIGIN) or (str(chain[-1][0]) if chain else None)
            # Its activity names the sender (service@process), not this loop thread.
            previous = swap_caller(origin) if origin else None
            try:
                ticket = observer.call_sent(handler, tuple(args), kwargs)
            finally:
                if origin:
                    swap_caller(previous)
                if attached is not None:
                    otel_context.detach(attached)
            hub = link.hub()
            if ticket is not None and hub is not None:
                hub.served_call(ticket, link.wire_attributes(token, name), origin)
        taken = _Taken()
        future.add_done_callback(functools.partial(self._answer, reply, handler, taken))
        caller = _caller_id(reply)
        if caller in link.registry.peers or caller in link.registry.leaving:
            # Taken: said if no answer has gone within ACK_AFTER (on the same
            # subject, so before the answer), so that the caller fails the
            # call at once if this process goes. A quick call never says it:
            # the message costs more than the call (benchmarks.nats).
            asyncio.get_running_loop().call_later(ACK_AFTER, self._acknowledge, reply, taken)
        next(handler.dispatched)
        status = handler.destination.post((handler, tuple(args), kwargs, future, ticket))
        if status:
            handler.stats.refuse()
            refusal = handler.destination.call_refused(status)
            if ticket is not None and observer is not None:
                observer.call_refused(ticket, handler, refusal)
            if future.set_running_or_notify_cancel():
                future.set_exception(refusal)
            return
        if chain:
            link.cycles.watch(future, handler, chain)

    def _acknowledge(self, reply: str, taken: _Taken) -> None:
        """Say that this process took a call still unanswered (the loop)."""
        if not taken.answered:
            self.link.loop.publish(reply, self.link.ack)

    def _answer(self, reply: str, handler: Handler, taken: _Taken, future: Any) -> None:
        """Send the outcome of a call from another process (the thread that finished it)."""
        # Before the answer is queued: an acknowledgement the loop sends from
        # now on would follow it, and the caller ignores one for a call it has
        # finished.
        taken.answered = True
        error: BaseException | None
        if future.cancelled():
            cycle = getattr(future, "deadlock", None)
            if cycle:
                error = DeadlockError(cycle)
            else:
                error = BusClosedError(f"{handler.name} was cancelled before it ran")
        else:
            error = future.exception()
        if error is None:
            result = future.result()
            try:
                body = wire.encode_typed({"result": result})
            except (TypeError, ValueError, RecursionError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                error = TypeError(
                    f"{handler.name}: its result ({type(result).__qualname__}) has no JSON form, "
                    f"so it cannot reach another process: {reason}"
                )
            else:
                self.link.loop.publish(reply, body)
                return
        self._answer_error(reply, error, "500")

    def _answer_error(self, reply: str, error: BaseException, code: str) -> None:
        """Send an error reply; ``code`` is NATS micro's (400: the request, 500: the handler)."""
        origin = self.link.label
        body = wire.encode({"error": wire.error_body(error, origin)})
        message = error_text(error).splitlines()[0][:1000]
        headers = {"Nats-Service-Error": message, "Nats-Service-Error-Code": code}
        self.link.loop.publish(reply, body, "", headers)

    # -- events from other processes (the loop) --------------------------------------------

    async def on_event(self, listening: Listening, msg: Any) -> None:
        if not listening.active:
            return
        link = self.link
        name = msg.subject[len(link.subjects.event_prefix) :]
        handler = listening.handler
        if not pattern_matches(handler.name, name):
            return  # the subject was coarser than the pattern
        headers = msg.headers
        if headers is not None and listening.group is not None:
            served = headers.get(wire.SERVED)
            if served and listening.group in served.split(","):
                return  # the firer's own instance of this listener had it
        try:
            body = wire.decode(msg.data)
            args = tuple(body.get("args", ()))
            kwargs = body.get("kwargs", {})
            if not isinstance(kwargs, dict):
                raise ValueError("'kwargs' is not an object")
        except (ValueError, TypeError, AttributeError) as exc:
            self.malformed += 1
            self._log.warning("dropped event %r: its body is malformed (%s)", name, exc)
            return
        refusal: Exception | None = None
        try:
            args, kwargs = _typed(handler, args, kwargs)
        except Exception as exc:  # InvalidArgumentError: not for this listener's types
            refusal = exc
        bus = link.bus
        hub = link.hub()
        if hub is None:
            next(handler.dispatched)
            if refusal is not None:
                self._not_converted(name, handler, refusal)
                return
            status = handler.destination.post((handler, args, kwargs, name, None))
            if status:
                bus._not_delivered(name, handler, status)
            return
        ctx = wire.extract(headers)
        attached = otel_context.attach(ctx) if ctx is not None else None
        try:
            attributes = link.event_attributes(msg.subject, listening.group)
            event = hub.remote_fired(name, args, kwargs, (handler,), attributes)
        finally:
            if attached is not None:
                otel_context.detach(attached)
        ticket = None if event is None else hub.delivery_queued(event, handler)
        next(handler.dispatched)
        if refusal is not None:
            self._not_converted(name, handler, refusal)
            if ticket is not None:
                hub.delivery_refused(ticket, handler, refusal)
        else:
            status = handler.destination.post((handler, args, kwargs, name, ticket))
            if status:
                error = bus._not_delivered(name, handler, status)
                if ticket is not None:
                    hub.delivery_refused(ticket, handler, error)
        if event is not None:
            hub.event_posted(event)

    def _not_converted(self, name: str, handler: Handler, error: Exception) -> None:
        """An event whose arguments do not convert to a listener's types: it fails, as
        a listener that raised does (counted, logged, on its span); the others hear it."""
        handler.stats.finish(0.0, error)
        self._log.warning("listener %s did not run for event %r: %s", handler.qualname, name, error)

    def slow(self, sub: Any) -> None:
        """NATS dropped a message for ``sub``: this process did not keep up."""
        self.slow_drops += 1
        listening = self.by_sub.get(id(sub))
        if listening is None:
            self._log.warning("NATS dropped a message for %s: this process is too slow", sub)
            return
        handler = listening.handler
        next(handler.dispatched)
        handler.stats.refuse()  # counted as the listener's ``dropped``
        runtime: Any = handler.destination
        runtime.count_dropped()
        self._log.warning(
            "events for %s dropped: this process does not keep up with them", handler.qualname
        )


def _typed(
    handler: Handler, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """An event's JSON arguments converted to one listener's annotated types.

    Arguments that do not bind are left as they are: the listener raises
    ``TypeError`` when called, as it would in its own process.

    Raises:
        InvalidArgumentError: an argument does not convert.
    """
    binder = handler.binder
    contract = binder.contract()
    if contract is None or not contract.checked:
        return args, kwargs
    try:
        binder.check(args, kwargs)
    except TypeError:
        return args, kwargs
    return contract.convert(args, kwargs)


class _Taken:
    """Whether a call from another process has been answered (then it is not acknowledged)."""

    __slots__ = ("answered",)

    def __init__(self) -> None:
        self.answered = False


def _caller_id(reply: str) -> str:
    """The process id in a bus process's reply subject (``_INBOX.ID.TOKEN``), else ``""``.

    Only a process of the bus, which reads it, gets an acknowledgement: a
    NATS client (``nats req``, a micro client) takes the first message as the
    reply.
    """
    if not reply.startswith("_INBOX."):
        return ""
    return reply[7:].partition(".")[0]


def _chain(text: str | None) -> list[Any]:
    """The ``Bus-Chain`` header: ``[[node, process id, token], ...]``, or ``[]``."""
    if not text:
        return []
    try:
        chain = wire.decode(text.encode())
    except ValueError:
        return []
    if not isinstance(chain, list):
        return []
    return [
        e
        for e in chain[-64:]
        if isinstance(e, list) and len(e) == 3 and all(isinstance(x, str) for x in e)
    ]
