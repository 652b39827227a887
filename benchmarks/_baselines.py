"""The implementations the bus is measured against, written plainly.

They are the yardstick of the performance targets, so each is the
straightforward version a competent engineer would write, with nothing added
to slow it down:

* :class:`EventFloor` and :class:`CallFloor`: the floor. One worker thread
  fed by a ``queue.SimpleQueue`` (the cheapest hand-off between two threads
  the standard library has); an event is its arguments put on the queue and
  the listener called with them on the worker; a call also carries a
  ``threading.Lock`` created locked, which the worker releases once it has
  put the reply in a one-element list.
* :class:`ObviousBus`: dicts of commands and listeners in front of a
  ``concurrent.futures.ThreadPoolExecutor``.
* :class:`ObviousTracedBus`: the same, with plain OpenTelemetry SDK spans
  around every call, the context carried into the worker by hand.

:class:`CountingExporter` and :func:`counting_provider` give a real SDK
``TracerProvider`` whose ``BatchSpanProcessor`` exports to a counter, so a
traced run pays for every span and can prove none was lost.

Example::

    from benchmarks import CallFloor, ObviousBus

    with ObviousBus() as obvious:
        obvious.register_command("echo", lambda x: x)
        assert obvious.execute_command("echo", 42).result() == 42
    with CallFloor(lambda x: x) as floor:
        assert floor.call(42) == 42
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from bus._core._threads import start_thread

__all__ = [
    "DEEP_QUEUE",
    "CallFloor",
    "CountingExporter",
    "EventFloor",
    "ObviousBus",
    "ObviousTracedBus",
    "counting_provider",
]

_log = logging.getLogger(__name__)

DEEP_QUEUE = 1 << 17
"""A ``BatchSpanProcessor`` queue deep enough for any burst the benchmarks make.

The obvious traced bus has no backpressure: with the SDK's default queue
(2,048 spans) its processor drops whatever a burst brings beyond that, and a
dropped span is one nobody paid to export, which would flatter it. The bus
waits for room instead (``trace_overflow="wait"``) and gets the default queue.
"""


class CountingExporter(SpanExporter):
    """A span exporter that only counts what it is given.

    Thread-safe: the ``BatchSpanProcessor`` exports from its own thread, and
    ``force_flush`` exports from the caller's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        """Spans exported since creation or the last :meth:`reset`."""
        with self._lock:
            return self._count

    def reset(self) -> int:
        """Set the count back to zero and return what it was."""
        with self._lock:
            count, self._count = self._count, 0
            return count

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Count ``spans`` and report success."""
        with self._lock:
            self._count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here, so always done."""
        return True


def counting_provider(
    max_queue_size: int | None = None,
) -> tuple[TracerProvider, CountingExporter]:
    """A real SDK provider exporting through a ``BatchSpanProcessor`` to a counter.

    Args:
        max_queue_size: the processor's queue; ``None`` for the SDK's default
            (2,048 spans, or ``OTEL_BSP_MAX_QUEUE_SIZE``), what an application
            gets when it does not choose.

    Returns:
        The provider (call ``shutdown()`` when done, to stop its export thread)
        and the exporter that counts its spans.
    """
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=max_queue_size))
    return provider, exporter


class _Stop:
    """What :meth:`close` puts on a floor's queue to end its worker."""


_STOP = _Stop()


class _Floor:
    """A worker thread and the ``SimpleQueue`` that feeds it.

    The worker is started as the bus starts its mailbox threads (under
    ``SCHED_BATCH`` on Linux, unless ``BUS_SCHED_BATCH=0``), so that the
    floor stays the least a hand-off costs rather than the bus beating it
    by its scheduling policy alone.
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = start_thread(name, self._work, batch=True)

    def _work(self) -> None:
        raise NotImplementedError

    @property
    def thread(self) -> threading.Thread:
        """The worker thread."""
        return self._thread

    def close(self) -> None:
        """Let the worker finish what is queued, then join it. Idempotent."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventFloor(_Floor):
    """The event floor: ``SimpleQueue`` put here, get and call the listener on the worker.

    Args:
        listener: what :meth:`fire` runs on the worker, with its arguments.
        name: the worker thread's name.

    Example::

        received = []
        with EventFloor(received.append) as floor:
            floor.fire(1)
        assert received == [1]
    """

    def __init__(self, listener: Callable[..., Any], *, name: str = "floor-events") -> None:
        self._listener = listener
        super().__init__(name)

    def fire(self, *args: Any) -> None:
        """Queue one call of the listener on the worker; never waits for it.

        Callable from any thread.
        """
        self._queue.put(args)

    def _work(self) -> None:
        get, listener = self._queue.get, self._listener
        while True:
            # The try costs nothing until a listener raises (CPython 3.11+);
            # a failing listener is logged and the worker goes on.
            try:
                while (args := get()) is not _STOP:
                    listener(*args)
                return
            except Exception:
                _log.exception("a floor listener failed")


class _Raised:
    """A handler's exception travelling back to the caller in the reply box."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class CallFloor(_Floor):
    """The command floor: a ``SimpleQueue`` hand-off, and a lock for the reply.

    Args:
        handler: what :meth:`call` runs on the worker, with the call's arguments.
        name: the worker thread's name.

    Example::

        with CallFloor(lambda x: x * 2) as floor:
            assert floor.call(21) == 42
    """

    def __init__(self, handler: Callable[..., Any], *, name: str = "floor-calls") -> None:
        self._handler = handler
        super().__init__(name)

    def call(self, *args: Any) -> Any:
        """Run the handler on the worker and return its result.

        Callable from any thread except the worker's; blocks until the worker
        has run the handler. Re-raises what the handler raised.
        """
        done = threading.Lock()
        done.acquire()
        box: list[Any] = [None]
        self._queue.put((args, done, box))
        done.acquire()
        value = box[0]
        if type(value) is _Raised:
            raise value.error
        return value

    def _work(self) -> None:
        get, handler = self._queue.get, self._handler
        while (item := get()) is not _STOP:
            args, done, box = item
            try:
                box[0] = handler(*args)
            except BaseException as exc:  # the caller re-raises it
                box[0] = _Raised(exc)
            done.release()


class ObviousBus:
    """A bus built the obvious way on ``ThreadPoolExecutor``.

    Registries are plain dicts, so register everything before the traffic
    starts; :meth:`execute_command` and :meth:`fire_event` may then be called
    from any thread, handlers included.

    Args:
        max_workers: passed to ``ThreadPoolExecutor`` (its default if ``None``).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="obvious")
        self._commands: dict[str, Callable[..., Any]] = {}
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    def register_command(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` the handler of command ``name``. Not thread-safe."""
        self._commands[name] = fn

    def register_listener(self, name: str, fn: Callable[..., Any]) -> None:
        """Add ``fn`` to the listeners of event ``name``. Not thread-safe."""
        self._listeners.setdefault(name, []).append(fn)

    def execute_command(self, name: str, *args: Any) -> Future[Any]:
        """Run the command on the pool; the future holds its result."""
        return self._executor.submit(self._commands[name], *args)

    def fire_event(self, name: str, *args: Any) -> None:
        """Submit one call per listener of ``name``; never waits for them."""
        for fn in self._listeners.get(name, ()):
            self._executor.submit(fn, *args)

    def close(self) -> None:
        """Finish queued work and join the pool's threads."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ObviousTracedBus(ObviousBus):
    """:class:`ObviousBus` with plain OpenTelemetry SDK spans around every call.

    A command is a CLIENT span at the caller, ended when its future completes,
    and a SERVER span around the handler; an event is a PRODUCER span in
    :meth:`fire_event` and a CONSUMER span around each listener. The caller's
    context is attached in the worker, so the server and consumer spans are
    children and a command run inside a handler nests under it.

    Args:
        tracer_provider: where the spans go.
        max_workers: passed to ``ThreadPoolExecutor``.
    """

    def __init__(
        self, tracer_provider: trace.TracerProvider, max_workers: int | None = None
    ) -> None:
        super().__init__(max_workers)
        self._tracer = tracer_provider.get_tracer("benchmarks.obvious")

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded (not with ``OTEL_SDK_DISABLED=true``)."""
        return not isinstance(self._tracer, trace.NoOpTracer)

    def execute_command(self, name: str, *args: Any) -> Future[Any]:
        """Run the command on the pool inside a CLIENT span and a SERVER span."""
        fn = self._commands[name]
        span = self._tracer.start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system.name": "bus", "rpc.method": name},
        )
        ctx = trace.set_span_in_context(span)
        future = self._executor.submit(self._serve, ctx, name, fn, args)
        future.add_done_callback(lambda done: _end_client_span(span, done))
        return future

    def fire_event(self, name: str, *args: Any) -> None:
        """Submit each listener inside a PRODUCER span; each runs in a CONSUMER span."""
        with self._tracer.start_as_current_span(
            f"send {name}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "bus",
                "messaging.operation.type": "send",
                "messaging.destination.name": name,
            },
        ):
            ctx = otel_context.get_current()
            for fn in self._listeners.get(name, ()):
                self._executor.submit(self._consume, ctx, name, fn, args)

    def _serve(
        self,
        ctx: otel_context.Context,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> Any:
        token = otel_context.attach(ctx)
        try:
            with self._tracer.start_as_current_span(
                name,
                kind=SpanKind.SERVER,
                attributes={"rpc.system.name": "bus", "rpc.method": name},
            ):
                return fn(*args)
        finally:
            otel_context.detach(token)

    def _consume(
        self,
        ctx: otel_context.Context,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        token = otel_context.attach(ctx)
        try:
            with self._tracer.start_as_current_span(
                f"process {name}",
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "bus",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": name,
                },
            ):
                fn(*args)
        finally:
            otel_context.detach(token)


def _end_client_span(span: trace.Span, future: Future[Any]) -> None:
    error = None if future.cancelled() else future.exception()
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
    span.end()
