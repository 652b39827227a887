"""The implementations the bus is measured against, written plainly.

They are the yardstick of DESIGN.md section 10, so each is the straightforward
version a competent engineer would write, with nothing added to slow it down:

* :class:`BareHandoff`: one worker thread fed by a ``queue.Queue``; the caller
  waits on a ``threading.Lock`` created locked, which the worker releases once
  it has put the reply in a one-element list. Events go down the same queue
  and the worker calls the listener.
* :class:`ObviousBus`: dicts of commands and listeners in front of a
  ``concurrent.futures.ThreadPoolExecutor``.
* :class:`ObviousTracedBus`: the same, with plain OpenTelemetry SDK spans
  around every call, the context carried into the worker by hand.

:class:`CountingExporter` and :func:`counting_provider` give a real SDK
``TracerProvider`` whose ``BatchSpanProcessor`` exports to a counter, so a
traced run pays for every span and can prove none was lost.

Example::

    from benchmarks import ObviousBus

    with ObviousBus() as obvious:
        obvious.register_command("echo", lambda x: x)
        assert obvious.execute_command("echo", 42).result() == 42
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = [
    "SPAN_QUEUE_SIZE",
    "BareHandoff",
    "CountingExporter",
    "ObviousBus",
    "ObviousTracedBus",
    "counting_provider",
]

_log = logging.getLogger(__name__)

# The SDK's default queue (2,048 spans) drops spans, with a logged warning for
# each, whenever a burst outruns the export thread; a dropped span is a span
# nobody paid to export, which would flatter the traced runs. A queue this deep
# holds any burst the benchmarks make, and the exact span counts prove it.
SPAN_QUEUE_SIZE = 1 << 16


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


def counting_provider() -> tuple[TracerProvider, CountingExporter]:
    """A real SDK provider exporting through a ``BatchSpanProcessor`` to a counter.

    Returns:
        The provider (call ``shutdown()`` when done, to stop its export thread)
        and the exporter that counts its spans.
    """
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=SPAN_QUEUE_SIZE))
    return provider, exporter


class _Raised:
    """A handler's exception travelling back to the caller in the reply box."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


# (function, arguments, reply lock or None for an event, reply box or None)
_Item: TypeAlias = (
    "tuple[Callable[..., Any], tuple[Any, ...], threading.Lock | None, list[Any] | None]"
)


class BareHandoff:
    """A bare lock-and-queue hand-off between the caller and one worker thread.

    Args:
        handler: what :meth:`call` runs on the worker, with the call's arguments.
        listener: what :meth:`fire` runs on the worker; ``None`` if unused.
        name: the worker thread's name.

    Example::

        handoff = BareHandoff(lambda x: x * 2)
        assert handoff.call(21) == 42
        handoff.close()
    """

    def __init__(
        self,
        handler: Callable[..., Any],
        listener: Callable[..., Any] | None = None,
        *,
        name: str = "bare-worker",
    ) -> None:
        self._handler = handler
        self._listener = listener
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def call(self, *args: Any) -> Any:
        """Run the handler on the worker and return its result.

        Callable from any thread except the worker's; blocks until the worker
        has run the handler. Re-raises what the handler raised.
        """
        done = threading.Lock()
        done.acquire()
        box: list[Any] = [None]
        self._queue.put((self._handler, args, done, box))
        done.acquire()
        value = box[0]
        if type(value) is _Raised:
            raise value.error
        return value

    def fire(self, *args: Any) -> None:
        """Queue one call of the listener on the worker; never waits for it.

        Callable from any thread.
        """
        if self._listener is None:
            raise RuntimeError("this BareHandoff was made without a listener")
        self._queue.put((self._listener, args, None, None))

    def close(self) -> None:
        """Let the worker finish what is queued, then join it. Idempotent."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _work(self) -> None:
        get = self._queue.get
        while (item := get()) is not None:
            fn, args, done, box = item
            if done is None or box is None:
                try:
                    fn(*args)
                except Exception:
                    _log.exception("bare listener failed")
                continue
            try:
                box[0] = fn(*args)
            except BaseException as exc:  # the caller re-raises it
                box[0] = _Raised(exc)
            done.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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
