"""The future ``execute_command`` returns.

A ``concurrent.futures.Future`` in every respect, with two additions made
where the waiting happens: a wait from a service thread is checked for a
deadlock before it begins, and a caller that stops waiting (a timeout, or a
``cancel()`` too late to stop the handler) is remembered, so that a result
arriving afterwards is counted as a late reply.
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING, Any

from ._errors import DeadlockError
from ._worker import current_worker

if TYPE_CHECKING:
    from ._deadlock import WaitGraph
    from ._router import Handler

__all__ = ["CommandFuture"]


class CommandFuture(Future[Any]):
    """The pending result of one command.

    Attributes:
        command: the command's name.
        service: the name of the service that handles it.
    """

    #: For a transport: the chain of remote waits that led to this command
    #: (set on the future of a call that came from another process).
    chain: Any = None
    #: The command the thread waiting on this future is running, if any:
    #: a transport follows it to learn which chain a wait belongs to.
    via: CommandFuture | None = None

    def __init__(self, handler: Handler, waits: WaitGraph) -> None:
        super().__init__()
        self._handler = handler
        self._waits = waits
        self.gave_up = False

    @property
    def command(self) -> str:
        """The command's name."""
        return self._handler.name

    @property
    def service(self) -> str:
        """The service (or ``"pool"``) that handles the command."""
        return self._handler.destination.name

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result, as ``Future.result``, with deadlock detection.

        Raises:
            DeadlockError: called on a service thread, the wait would close a
                cycle of services waiting on each other; raised at once.
            TimeoutError: ``timeout`` passed first (the late result is counted).
        """
        if self.done():
            return super().result()
        return self._wait(super().result, timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the outcome, as ``Future.exception``, with deadlock detection."""
        if self.done():
            return super().exception()
        error: BaseException | None = self._wait(super().exception, timeout)
        return error

    def cancel(self) -> bool:
        """Cancel if the handler has not started; otherwise note the caller gave up."""
        if super().cancel():
            return True
        if not self.done():
            self.gave_up = True
        return False

    def _wait(self, wait: Any, timeout: float | None) -> Any:
        worker = current_worker()
        if worker is None:  # a thread of no service never closes a cycle
            try:
                return wait(timeout)
            except FutureTimeoutError:
                self.gave_up = True
                raise
        target = self._handler.destination
        try:
            self._waits.enter(worker.runtime, target)
        except DeadlockError:
            self.gave_up = True  # the command still runs: its result will be late
            raise
        worker.waiting = self
        self.via = worker.future
        try:
            return wait(timeout)
        except FutureTimeoutError:
            self.gave_up = True
            raise
        finally:
            worker.waiting = None
            self._waits.leave(worker.runtime, target)

    def __repr__(self) -> str:
        return f"<CommandFuture {self.command!r} on {self.service} {self._state.lower()}>"
