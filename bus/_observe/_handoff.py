"""Handing SDK spans to an application's span processors, a chunk at a time.

The trace thread makes ``ReadableSpan``s in batches; the SDK's processors take
them one by one (``on_end``). Through a ``BatchSpanProcessor`` that costs about
a microsecond a span, most of it the processor re-checking, for every span,
what cannot change within a batch: that it is not shut down, that the process
has not forked (an ``os.getpid()`` system call), whether the queue is full.
A traced command makes two spans, so that alone was a third of what tracing a
command cost with an application's provider.

``Handoff`` does for a whole chunk what ``on_end`` does for each span of it:
when every processor of the provider is the SDK's own ``BatchSpanProcessor``
(not a subclass, which may do more in ``on_end``), it checks those three
conditions once and appends the chunk to each processor's queue in one
``deque.extendleft``, in the order ``on_end`` would have, then wakes the
processor's worker as ``on_end`` would. Whenever a condition does not hold
(shut down, forked, not enough room), the chunk goes span by span through
``on_end`` after all, so the SDK logs, counts and drops exactly as it does.
Any other processor is always called span by span.

The processor's queue and flags are internals of the SDK with no public
getter; they are used only after checking that they look as the SDK has
them, and otherwise the SDK's route is used (``tests/bus/observe/
test_handoff.py`` checks that the installed SDK takes the direct route, and
that what reaches the exporter is the same either way).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence, Sized
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ._provider import batch_queues

__all__ = ["Handoff", "batch_queue_of"]


def batch_queue_of(member: Any) -> Any | None:
    """The SDK's batching core of a ``BatchSpanProcessor`` (``None`` if it looks unknown).

    Exactly the SDK's class, with a bounded ``deque`` for a queue, a wake-up
    ``Event``, and the flags ``on_end`` checks: only then does appending to
    the queue do what ``on_end`` does.
    """
    if type(member) is not BatchSpanProcessor:
        return None
    inner = getattr(member, "_batch_processor", None)
    queue = getattr(inner, "_queue", None)
    size = getattr(inner, "_max_queue_size", None)
    batch = getattr(inner, "_max_export_batch_size", None)
    if (
        type(queue) is deque
        and type(size) is int
        and queue.maxlen == size
        and type(batch) is int
        and 0 < batch <= size
        and type(getattr(inner, "_shutdown", None)) is bool
        and type(getattr(inner, "_pid", None)) is int
        and isinstance(getattr(inner, "_worker_awaken", None), threading.Event)
    ):
        return inner
    return None


class Handoff:
    """Hands ``ReadableSpan``s to a provider's span processor, a chunk per call.

    The provider's processors are read again whenever the application adds
    one (the SDK replaces its tuple of them), so a processor added after the
    bus was made gets the spans from then on, as it would from the SDK's
    own tracer. Only the trace thread calls it.

    Args:
        processor: the provider's active span processor.
        failed: called with the exception when a processor raises (per span).
    """

    def __init__(self, processor: SpanProcessor, failed: Callable[[Exception], None]) -> None:
        self._processor = processor
        self._failed = failed
        self._multi = type(processor) is SynchronousMultiSpanProcessor
        self._seen: Any = None  # the tuple of processors last read
        #: ``(processor, its batching core or None)``, in the provider's order.
        self.members: list[tuple[Any, Any | None]] = []
        #: ``(queue, bound, export batch)`` of each batch processor (``batch_queues``).
        self.queues: list[tuple[Sized, int, int]] = []
        #: The most spans handed at once while waiting for room: a batch
        #: processor's queue is left room for a whole export batch.
        self.chunk = 1
        self._refresh()

    def _refresh(self) -> None:
        members: Sequence[Any] = (self._processor,)
        if self._multi:
            members = self._seen = self._processor._span_processors  # type: ignore[attr-defined]
        self.members = [(member, batch_queue_of(member)) for member in members]
        self.queues = batch_queues(self._processor)
        self.chunk = max(min((size - batch for _, size, batch in self.queues), default=0), 1)

    def wanted(self) -> bool:
        """Whether any processor takes spans (re-reading the provider's, if it changed)."""
        if self._multi and self._processor._span_processors is not self._seen:  # type: ignore[attr-defined]
            self._refresh()
        return bool(self.members)

    @property
    def direct(self) -> bool:
        """Whether every processor takes whole chunks (all are the SDK's batch processor)."""
        return bool(self.members) and all(core is not None for _, core in self.members)

    def hand(self, spans: list[ReadableSpan]) -> None:
        """What ``on_end(span)`` for each span does, processor by processor."""
        if not spans:
            return
        for member, core in self.members:
            if core is not None and self._append(core, spans):
                continue
            on_end = member.on_end
            for span in spans:
                try:
                    on_end(span)
                except Exception as exc:
                    self._failed(exc)

    @staticmethod
    def _append(core: Any, spans: list[ReadableSpan]) -> bool:
        """Append ``spans`` as ``on_end`` would; ``False`` to leave it to ``on_end``.

        The bus's spans are all sampled (``on_end``'s first test). A chunk
        that does not fit whole goes through ``on_end``, which drops the
        oldest with a warning and counts it in the SDK's metrics.
        """
        queue = core._queue
        if core._shutdown or core._pid != os.getpid() or len(queue) + len(spans) > queue.maxlen:
            return False
        # appendleft per span, as on_end does: the worker pops the oldest
        # from the right.
        queue.extendleft(spans)
        awaken = core._worker_awaken
        if len(queue) >= core._max_export_batch_size and not awaken.is_set():
            awaken.set()
        return True
