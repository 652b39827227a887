"""``Bus``: the core with tracing, the activity stream and the control endpoint.

This is the top floor of ``bus``: it assembles the core (``_core``: verbs,
routing, mailboxes, services), the observe layer (``_observe``: records,
spans, the ring, activity, ``inspect()``) and, when asked, the control
endpoint (``bus.control``). Nothing below imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ._core._bus import BusCore, check_int
from ._core._service import Disposable
from ._core._threads import start_thread
from ._observe._activity import Activity
from ._observe._hub import Hub, Tap, Watcher
from ._observe._inspect import snapshot
from ._observe._jsonval import Redactor, redact_secrets
from ._observe._provider import resolve_provider, tracing_disabled_by_env
from ._observe._ring import SpanRing
from ._observe._sink import TraceSink

if TYPE_CHECKING:
    from ._nats import NatsLink
    from .control import ControlServer

__all__ = ["Bus"]


class Bus(BusCore):
    """Services on their own threads, talking through four verbs.

    Args:
        name: the bus's name, used in thread names, the console and traces.
        tracing: record an OpenTelemetry span for every command and event.
            ``OTEL_SDK_DISABLED=true`` turns it off for the whole process.
        tracer_provider: where spans go; by default the application's global
            provider, else the bus's own (configured from ``OTEL_*``).
        mailbox_size: the bound of every mailbox. A command sent to a full
            mailbox raises ``MailboxFullError`` at once; an event delivery to
            a full mailbox is dropped and counted on the listener and service.
        hung_after: seconds after which a running handler is reported hung.
        max_pool_threads: the most threads the shared pool grows to.
        redact: ``redact(key, value) -> value`` applied to keyword arguments
            and dict entries before they are recorded (default: mask keys that
            look like secrets); ``None`` records everything.
        json_limit: the most characters of JSON recorded per argument list or
            result; longer text is cut and marked truncated.
        span_buffer: records waiting for export; what happens beyond it is
            ``trace_overflow``.
        trace_overflow: ``"drop"`` (the default, the OpenTelemetry convention):
            a span that finds the buffer full is dropped and counted.
            ``"wait"``: lossless; the thread recording it waits (at most 10 s)
            for room, and the trace thread likewise waits for room in a
            ``BatchSpanProcessor``'s queue rather than overrun it, so a
            debugging capture has every span, at the exporter's pace.
        ring_size: recent spans kept in memory for the console.
        control: serve the console's control protocol (``docs/protocol.md``):
            ``True`` on ``bus.control.default_address(name)``, or a socket
            path. A live bus already there raises ``AddressInUseError``.
        nats: join bus ``name`` on the NATS server at this URL
            (``docs/distributed.md``): this process's services serve every
            process on the bus, and its listeners hear events fired anywhere
            on it. ``None`` reads ``BUS_NATS_URL``; ``""`` never joins. A
            server that is not there raises ``TransportError`` at once.
        remote_timeout: the deadline, in seconds, of every call to a command
            of another process (``ServiceUnavailableError`` after it).
        peer_timeout: seconds of silence after which another process on the
            bus is taken for gone: it leaves this process's registry, and
            the calls it had taken fail at once (``ServiceUnavailableError``,
            ``delivered``). This process beats every fifth of it (between
            0.05 s and 1 s).
        validate: convert and check in-process calls as the console's are
            (``docs/bus.md``, "Types"): ``execute_command`` against the
            handler's annotations, ``fire_event`` against a declared payload
            type; a value that does not convert raises
            ``InvalidArgumentError``. For development: it costs a pydantic
            validation per call, and nothing at all when off.

    Every method may be called from any thread unless its docstring says
    otherwise.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        tracing: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
        mailbox_size: int = 100_000,
        hung_after: float = 10.0,
        max_pool_threads: int = 32,
        redact: Redactor | None = redact_secrets,
        json_limit: int = 4096,
        span_buffer: int = 200_000,
        trace_overflow: Literal["drop", "wait"] = "drop",
        ring_size: int = 10_000,
        control: bool | str | os.PathLike[str] = False,
        nats: str | None = None,
        remote_timeout: float = 30.0,
        peer_timeout: float = 5.0,
        validate: bool = False,
    ) -> None:
        check_int("json_limit", json_limit, 16)
        _check_seconds("remote_timeout", remote_timeout)
        _check_seconds("peer_timeout", peer_timeout)
        if nats is None:
            nats = os.environ.get("BUS_NATS_URL") or None
        if nats is not None and not isinstance(nats, str):
            raise TypeError(f"nats must be a URL string or None, not {type(nats).__name__}")
        check_int("span_buffer", span_buffer, 1)
        check_int("ring_size", ring_size, 1)
        if trace_overflow not in ("drop", "wait"):
            raise ValueError(f"trace_overflow must be 'drop' or 'wait', not {trace_overflow!r}")
        if redact is not None and not callable(redact):
            raise TypeError(f"redact must be callable or None, not {type(redact).__name__}")
        super().__init__(
            name,
            mailbox_size=mailbox_size,
            hung_after=hung_after,
            max_pool_threads=max_pool_threads,
            validate=validate,
        )
        self.redact = redact
        self.json_limit = json_limit
        self.tracing = tracing and not tracing_disabled_by_env()
        #: The most recent spans, for the console (``SpanRing``).
        self.spans = SpanRing(ring_size)
        self._own_provider: TracerProvider | None = None
        self._sink: TraceSink | None = None
        self._files: list[Any] = []  # the trace files the trace thread writes itself
        self._observing: Hub | None = None  # what self.observer is, typed as such
        if self.tracing:
            provider, files = resolve_provider(tracer_provider, self.name)
            if (
                provider is not tracer_provider
                and isinstance(provider, TracerProvider)
                and provider is not trace.get_tracer_provider()
            ):
                self._own_provider = provider
            self._sink = TraceSink(
                provider,
                self.spans,
                capacity=span_buffer,
                json_limit=json_limit,
                redact=redact,
                start_thread=start_thread,
                thread_name=f"bus:{self.name}/trace",
                overflow=trace_overflow,
                files=files,
            )
            self._files = files
            self._observing = self.observer = Hub(self._sink, json_limit=json_limit, redact=redact)
        self._control: ControlServer | None = None
        #: The control socket's path, or ``None`` without ``control``.
        self.address: Path | None = None
        self._nats: NatsLink | None = None
        if nats:
            self._start_nats(nats, float(remote_timeout), float(peer_timeout))
        if control:
            self._start_control(control)

    def _start_nats(self, url: str, remote_timeout: float, peer_timeout: float) -> None:
        try:
            from ._nats import NatsLink
        except ImportError as exc:
            self.close()
            from ._core._errors import TransportError

            raise TransportError(
                f"Bus(nats=...) needs nats-py: pip install 'bus[nats]' ({exc})"
            ) from None
        try:
            self._nats = NatsLink(
                self, url, remote_timeout=remote_timeout, peer_timeout=peer_timeout
            )
        except BaseException:
            self.close()
            raise

    def _start_control(self, control: bool | str | os.PathLike[str]) -> None:
        from .control import ControlServer

        try:
            address = None if isinstance(control, bool) else control
            self._control = ControlServer(self, address)
        except BaseException:
            self.close()
            raise
        self.address = self._control.address

    # -- introspection -----------------------------------------------------------------

    def inspect(self) -> dict[str, Any]:
        """A JSON-ready snapshot of services, commands, listeners and totals.

        Never blocks on handlers; the figures are read while the bus runs.
        """
        hub = self._observing
        tracing = {
            "enabled": self.tracing,
            **(self._sink.statistics() if self._sink else {}),
            "watch_errors": hub.watch_errors if hub else 0,
        }
        data = snapshot(self, tracing)
        holds, held = self.holds.counts()
        data["totals"].update(stubs=self.stubs.count(), holds=holds, held=held)
        if self._nats is not None:
            data["nats"] = self._nats.describe()
        return data

    def wait_for_command(self, name: str, timeout: float | None = 10.0) -> bool:
        """Block until command ``name`` can be called here; whether it can.

        A command of this process is there at once; on a bus across processes
        (``nats=``), this waits until a process on the bus announces it.
        Returns ``False`` after ``timeout`` seconds.
        """
        if self.router.local_command(name) is not None:
            return True
        if self._nats is None:
            return False
        return self._nats.wait_for_command(name, timeout)

    def watch(self, callback: Callable[[Activity], None]) -> _Unwatch:
        """Call ``callback(activity)`` for every command and event, start and end.

        The callback runs on whichever thread the activity happens on and must
        return quickly without blocking. Returns a handle whose ``dispose()``
        stops the calls.
        """
        self._hub().add_watcher(callback)
        return _Unwatch(self._hub(), callback)

    def _add_tap(self, tap: Tap) -> None:
        self._hub().add_tap(tap)

    def _remove_tap(self, tap: Tap) -> None:
        self._hub().remove_tap(tap)

    def _hub(self) -> Hub:
        """The observer, installed now if nothing observed the bus yet."""
        hub = self._observing
        if hub is None:
            with self._services_lock:
                if self._observing is None:
                    hub = Hub(None, json_limit=self.json_limit, redact=self.redact)
                    self._observing = self.observer = hub
                hub = self._observing
        return hub

    def flush_traces(self, timeout: float | None = 10.0) -> bool:
        """Build and export every span recorded so far; blocks until done.

        Returns ``False`` if ``timeout`` passed first. With the bus's own
        provider, its exporters are flushed too.
        """
        if self._sink is None:
            return True
        done = self._sink.flush(timeout)
        if self._own_provider is not None:
            self._own_provider.force_flush(int((timeout or 30) * 1000))
        return done

    def lossless_tracing(self) -> Disposable:
        """Make tracing lossless until the returned handle is disposed.

        While any such handle is held, a full trace buffer makes the thread
        recording a span wait (at most 10 s) instead of
        dropping it, as ``trace_overflow="wait"`` does for the bus's whole
        life. A console capturing a busy bus holds one for as long as it
        captures. On a bus that does not trace, the handle does nothing.
        """
        if self._sink is None:
            return _NOTHING_HELD
        return self._sink.hold_lossless()

    # -- shutdown ------------------------------------------------------------------------

    def _closing_begins(self) -> None:
        super()._closing_begins()
        if self._nats is not None:
            self._nats.leave()  # the others stop sending work here; replicas take it
        if self._control is not None:
            self._control.stop_listening()  # no new consoles; the socket file goes

    def _closing_ends(self, deadline: float) -> None:
        import time

        if self._control is not None:
            self._control.close(max(0.5, deadline - time.monotonic()))
        if self._nats is not None:
            self._nats.close(max(0.5, deadline - time.monotonic()))
        if self._sink is not None:
            self._sink.stop(max(0.5, deadline - time.monotonic()))
        if self._own_provider is not None:
            self._own_provider.shutdown()
        for exporter in self._files:
            exporter.shutdown()


def _check_seconds(name: str, value: object) -> None:
    """Raise unless ``value`` is a positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not 0 < value < float("inf"):  # NaN fails this too
        raise ValueError(f"{name} must be a positive number of seconds, not {value}")


class _Unwatch:
    """Handle returned by ``Bus.watch``; ``dispose()`` stops the callbacks."""

    __slots__ = ("_callback", "_hub")

    def __init__(self, hub: Hub, callback: Watcher) -> None:
        self._hub = hub
        self._callback = callback

    def dispose(self) -> None:
        """Stop calling the callback (idempotent)."""
        self._hub.remove_watcher(self._callback)

    def __enter__(self) -> _Unwatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


class _NothingHeld:
    """The handle ``lossless_tracing`` gives on a bus that does not trace."""

    __slots__ = ()

    def dispose(self) -> None:
        """Nothing to let go of."""


_NOTHING_HELD = _NothingHeld()
