"""A form's call, once read: the bus's check, the run, the wait, and Ctrl+G to cancel it.

``InvokeRun`` is the base of ``InvokeScreen`` (``busctl.tui.invoke_screen``),
which builds the form and reads it; this side sends what was read. Values go
to the bus's ``check`` first (nothing runs) and a value it refuses is marked
on its field; then the call runs on a worker, never blocking the UI, and its
result or error (with the handler's traceback) shows below the form. While a
command runs, Ctrl+G asks the bus to cancel it and says what became of it;
the call is also handed to the app's ``in_flight``, so ``x`` can cancel it
after the form is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text
from textual import work
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from bus.control.protocol import ErrorCode
from busctl._cancel import describe
from busctl._types import field_problems

from ._format import describe_error, shown
from ._spans import pretty
from .form_field import FormField

if TYPE_CHECKING:
    from concurrent.futures import Future

    from busctl._cancel import CancelOutcome

    from ._source import Kind, Source

__all__ = ["InvokeRun"]


def _was_cancelled(error: BaseException) -> bool:
    from busctl._remote import RemoteError

    return isinstance(error, RemoteError) and error.code == ErrorCode.CANCELLED


class InvokeRun(ModalScreen[None]):
    """The base of ``InvokeScreen``: running, checking and cancelling the form's call.

    ``InvokeScreen`` sets the state named here (in ``__init__``) and composes
    the ``#result`` it writes to.
    """

    source: Source
    kind: Kind
    #: The command's (or event's) name the form runs.
    target: str
    ran: Callable[[str, list[Any], dict[str, Any]], None] | None
    #: How the last run ended (``None`` before the first).
    outcome: InvokeRun.Finished | None
    #: The call in flight, which Ctrl+G cancels.
    running: Future[Any] | None
    #: What Ctrl+G made of the call in flight (``None``: not asked).
    cancel_outcome: CancelOutcome | None

    # Handled as on_invoke_screen_finished (and ..._refused): the screen's
    # messages, whichever of its bases sends them.
    @dataclass
    class Finished(Message, namespace="invoke_screen"):
        """A run ended: ``result`` on success, ``error`` otherwise."""

        name: str
        result: Any = None
        error: BaseException | None = None

    @dataclass
    class Refused(Message, namespace="invoke_screen"):
        """Values were refused before anything was sent; ``problems``: field -> why."""

        name: str
        problems: dict[str, str]

    def rows(self) -> dict[str, FormField]:
        """Each parameter's field, by name."""
        return {row.field.name: row for row in self.query(FormField)}

    @work(exclusive=True, group="invoke", exit_on_error=False)
    async def run_it(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Have the bus check the values, then send the call; never blocks the UI."""
        result = self.query_one("#result", Static)
        try:
            if not await self._checked(name, args, kwargs):
                return
            if self.ran is not None:
                self.ran(name, args, kwargs)
            result.update(Text("running…", style="dim"))
            if self.kind == "command":
                value = await self._wait_call(self.source.execute(name, args, kwargs))
                outcome: Any = Group(
                    Text("result", style="bold green"),
                    shown(pretty(value), multiline=True),
                )
            else:
                value = await asyncio.wrap_future(self.source.fire(name, args, kwargs))
                outcome = shown(f"fired {name}: {value} listener(s) match", "bold green")
        except Exception as exc:
            if _was_cancelled(exc):
                result.update(Text(describe("cancelled", name), style="bold yellow"))
            else:
                result.update(describe_error(exc))
            self.outcome = self.Finished(name, error=exc)
        else:
            result.update(outcome)
            self.outcome = self.Finished(name, result=value)
        self.post_message(self.outcome)

    async def _wait_call(self, call: Future[Any]) -> Any:
        """The call's result; meanwhile Ctrl+G may cancel it."""
        self.running, self.cancel_outcome = call, None
        in_flight = getattr(self.app, "in_flight", None)
        if in_flight is not None:  # so that x can cancel it after the form is closed
            in_flight.add(self.target, call)
        self.refresh_bindings()
        waited = asyncio.wrap_future(call)
        # Read whatever it ends with, even after the form stopped waiting (closed).
        waited.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await asyncio.wait([waited])
        finally:
            self.running = None
            self.refresh_bindings()
        if waited.cancelled():  # never left this process: as the bus answers a cancelled one
            from busctl._remote import RemoteError

            raise RemoteError(
                ErrorCode.CANCELLED, "the command was cancelled", {"type": "CancelledError"}
            )
        return waited.result()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Ctrl+G is shown in a call form, and works while its call runs (and can be cancelled)."""
        if action == "cancel_call":
            if self.kind != "command":
                return False  # an event is not waited for: nothing to cancel
            return True if self.running is not None and self.cancel_outcome is None else None
        return True

    def action_cancel_call(self) -> None:
        """Cancel the call this form is running, and say what became of it."""
        if self.running is None or self.cancel_outcome is not None:
            return
        self.cancel_it(self.running, self.target)

    @work(group="cancel", exit_on_error=False)
    async def cancel_it(self, call: Future[Any], name: str) -> None:
        """Ask the bus to cancel ``call``; a sync handler's refusal is said under "running…"."""
        try:
            outcome = await asyncio.wrap_future(self.source.cancel(call))
        except Exception as exc:  # the connection ended, or the bus refused: say why
            self.notify(f"could not cancel {name}: {exc}", severity="error")
            return
        self.cancel_outcome = outcome
        self.refresh_bindings()
        if outcome == "cancelled":
            return  # the call ends now, and says so
        message = describe(outcome, name, still_waiting=call is self.running)
        if call is self.running:
            running = Text("running…\n", style="dim")
            running.append(message, style="yellow")
            self.query_one("#result", Static).update(running)
        self.notify(message, severity="warning")

    async def _checked(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> bool:
        """Whether the bus takes these values (its ``check``: nothing is run).

        A value it refuses is marked on its field, with the bus's reason, and
        nothing is sent. A bus that cannot check (an older one) checks the call.
        """
        from busctl._remote import RemoteError

        if not hasattr(self.source, "check"):
            return True
        try:
            await asyncio.wrap_future(self.source.check(self.kind, name, args, kwargs))
        except RemoteError as exc:
            problems = self._mark(exc)
            result = self.query_one("#result", Static)
            lead = Text("not sent: ", style="bold red")
            if exc.code == ErrorCode.INVALID_ARGUMENT and problems:
                count = len(problems)
                lead.append(f"{count} value{'s' if count != 1 else ''} the bus would refuse")
                result.update(Group(lead, describe_error(exc)))
            else:
                result.update(Group(lead, describe_error(exc)))
            self.outcome = self.Finished(name, error=exc)
            self.post_message(self.Refused(name, problems))
            self.post_message(self.outcome)
            return False
        return True

    def _mark(self, exc: Exception) -> dict[str, str]:
        """Put the bus's reasons on the fields they are about; return them."""
        from busctl._remote import RemoteError

        rows = self.rows()
        for row in rows.values():
            row.clear_error()
        if not isinstance(exc, RemoteError):
            return {}
        if exc.code == ErrorCode.INVALID_ARGUMENT:
            problems = field_problems(exc.data)
        elif exc.code == ErrorCode.BAD_ARGUMENTS:  # "NAME(...) -> R: missing ... 'room'"
            signature = str(exc.data.get("signature") or "")
            why = exc.message.split(f"{signature}: ", 1)[-1] if signature else exc.message
            problems = {name: why for name in rows if f"'{name}'" in why}
        else:
            problems = {}
        for param, message in problems.items():
            if param in rows:
                rows[param].show_error(message)
        return problems
