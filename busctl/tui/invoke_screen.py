"""The form to call a command or fire an event, built from the bus's typed contract.

    screen = InvokeScreen(source, "command", command_entry)
    await screen.load_contract()           # the bus's schema of the name (BusctlApp does it)
    app.push_screen(screen)
    app.push_screen(InvokeScreen(source, "event", listener_entry_or_None, name="motion.detected"))

One field per parameter (``form_field.FormField``): its type, its choices in
a ``Select`` (an enum, a ``Literal``), its default filled in, or what the
form was last run with when the app keeps a ``memory``. Without a contract
(a bus older than the typed contract) the fields are the signature's,
untyped. Before anything is sent, the bus checks the values with the very
rules it applies to the call (``execute``/``fire`` with ``check``: nothing
runs); a value it refuses is marked on its field with its reason, and the
call is not sent. The call runs without blocking the UI; the result, or the
error with the handler's traceback, shows below the form, and the form stays
open to run again. ``Ctrl+Y`` copies the call as the form stands (a
``busctl`` line, Python or JSON-RPC).
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Static

from bus.control.protocol import ErrorCode
from busctl._args import ArgumentError
from busctl._cancel import describe
from busctl._types import Contract, Contracts, Field, field_problems

from ._format import shown
from ._spans import pretty
from .form_field import FormField, arguments, field_of, read_form

if TYPE_CHECKING:
    from concurrent.futures import Future

    from busctl._cancel import CancelOutcome

    from ._source import Kind, Source

__all__ = ["InvokeScreen", "arguments", "describe_error", "field_of", "read_form"]


def _was_cancelled(error: BaseException) -> bool:
    from busctl._remote import RemoteError

    return isinstance(error, RemoteError) and error.code == ErrorCode.CANCELLED


def describe_error(error: BaseException) -> Group:
    """An error from the bus (or from reading the form), with its traceback."""
    from busctl._client import RemoteError

    # Messages and tracebacks come from the bus: control characters made visible.
    parts: list[Any] = []
    if isinstance(error, RemoteError):
        parts.append(shown(error, "bold red"))
        parts.append(shown(f"(error {error.code})", "dim"))
        signature = error.data.get("signature")
        if signature:
            parts.append(shown(f"signature: {signature}"))
        suggestions = error.data.get("suggestions")
        if suggestions:
            parts.append(shown(f"did you mean: {', '.join(map(str, suggestions))}"))
        if error.remote_traceback:
            parts.append(shown(error.remote_traceback.rstrip(), "red", multiline=True))
    elif isinstance(error, ArgumentError):
        parts.append(shown(f"cannot read the arguments: {error}", "bold red"))
    else:
        parts.append(shown(f"{type(error).__name__}: {error}", "bold red"))
        if error.__traceback__ is not None:
            text = "".join(traceback.format_exception(error)).rstrip()
            parts.append(shown(text, "red", multiline=True))
    return Group(*parts)


class InvokeScreen(ModalScreen[None]):
    """A form to call a command or fire an event, and its outcome.

    Args:
        source: the bus.
        kind: ``"command"`` or ``"event"``.
        entry: the command's (or listener's) ``inspect()`` entry: name,
            signature, doc, params. ``None`` for an event with no known listener.
        name: the event name to fill in (events; defaults to the listener's
            pattern when it has no wildcard).
        event_names: names suggested while typing an event name.
        memory: what each form was last run with, by ``(kind, name)``: the
            form opens with it, and a run updates it.
        confirm: ``confirm(name, run)`` runs ``run`` now or once the person
            agrees (``--safe``); ``None`` runs at once.
        ran: called with ``(name, args, kwargs)`` of each call sent.

    Attributes:
        contract: the bus's typed contract of the name (``load_contract``), or
            ``None``: the fields are then the signature's, untyped.
    """

    DEFAULT_CSS = """
    InvokeScreen { align: center middle; }
    InvokeScreen > #invoke-box {
        width: 90%; max-width: 110; height: 90%; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    InvokeScreen #invoke-title { text-style: bold; height: 1; }
    InvokeScreen #invoke-doc { color: $text-muted; height: auto; max-height: 35%; }
    InvokeScreen #invoke-fields { height: auto; max-height: 50%; }
    InvokeScreen .field { height: 1; margin-top: 1; }
    InvokeScreen .field Label { width: 22; }
    InvokeScreen .field Input { border: none; height: 1; padding: 0 1 0 0; width: 1fr; }
    InvokeScreen #invoke-buttons { height: 1; margin-top: 1; }
    InvokeScreen #invoke-buttons Button { min-width: 10; margin-right: 2; }
    InvokeScreen #invoke-result { height: 1fr; border-top: solid $primary-darken-2; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("ctrl+g", "cancel_call", "Cancel call", priority=True),
        Binding("ctrl+y", "copy", "Copy as", priority=True),
    ]

    CONTRACT_WAIT: ClassVar[float] = 3.0
    """Seconds to wait for the bus's schema before the form shows without it."""

    @dataclass
    class Finished(Message):
        """A run ended: ``result`` on success, ``error`` otherwise."""

        name: str
        result: Any = None
        error: BaseException | None = None

    @dataclass
    class Refused(Message):
        """Values were refused before anything was sent; ``problems``: field -> why."""

        name: str
        problems: dict[str, str]

    def __init__(
        self,
        source: Source,
        kind: Kind,
        entry: dict[str, Any] | None,
        *,
        name: str | None = None,
        event_names: list[str] | None = None,
        memory: dict[tuple[str, str], dict[str, str]] | None = None,
        confirm: Callable[[str, Callable[[], None]], None] | None = None,
        ran: Callable[[str, list[Any], dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.confirm = confirm
        self.ran = ran
        self.source = source
        self.kind = kind
        self.entry = entry or {}
        self.params: list[dict[str, Any]] = list(self.entry.get("params") or ())
        if name is None:
            name = str(self.entry.get("name") or self.entry.get("pattern") or "")
            if any(c in name for c in "*?["):
                name = ""
        self.target = name
        self.event_names = event_names or []
        self.contract: Contract | None = None
        self.outcome: InvokeScreen.Finished | None = None
        self.running: Future[Any] | None = None  # the call in flight, which Ctrl+G cancels
        self.cancel_outcome: CancelOutcome | None = None
        self._described = ""  # the event name whose contract the fields show
        self.remembered = (memory or {}).get((kind, self.target), {})

    # -- the contract ------------------------------------------------------------------

    async def load_contract(self, name: str | None = None) -> Contract | None:
        """Ask the bus for the contract of ``name`` (the target); ``None`` if it has none.

        Awaited before the form is shown (``BusctlApp``), and again when the
        event name of a fire form changes. Never raises: without a contract
        the form is built from the signature.
        """
        name = self.target if name is None else name
        if not name or not hasattr(self.source, "schema"):
            return None
        try:
            document = await asyncio.wait_for(
                asyncio.wrap_future(self.source.schema(name)), self.CONTRACT_WAIT
            )
        except Exception:  # no schema (an older bus, a lost one): the untyped form
            return None
        contracts = Contracts(document)
        if self.kind == "command":
            self.contract = contracts.command(name, self.params)
        else:
            self.contract = contracts.event(name)
        self._described = name
        return self.contract

    def fields(self) -> list[Field]:
        """What the form asks for: the contract's fields, else the signature's."""
        if self.contract is not None:
            return list(self.contract.fields)
        if self.kind == "event" and self._described and self._described != self._entry_name():
            return []  # another event than the listener's: its parameters say nothing
        return [field_of(param) for param in self.params]

    def _entry_name(self) -> str:
        return str(self.entry.get("name") or self.entry.get("pattern") or "")

    def _wants_extra(self) -> bool:
        if self.kind != "event":
            return False
        if self.contract is not None:
            return self.contract.extra and not self.contract.fields
        return not self.fields()

    # -- the form ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        verb = "call" if self.kind == "command" else "fire"
        with Vertical(id="invoke-box"):
            title = f"{verb} {self.target}" if self.kind == "command" else "fire an event"
            yield Label(title, id="invoke-title")
            signature = self.entry.get("signature")
            doc = str(self.entry.get("doc") or "").strip()
            if signature or doc:
                text = f"{self.entry.get('handler', '')}{signature or ''}"
                # All of it (Args:, Raises:...), scrolling when it is long.
                with VerticalScroll(id="invoke-doc"):
                    yield Static(
                        shown(f"{text}\n{doc}".strip(), multiline=True), id="invoke-doc-text"
                    )
            with VerticalScroll(id="invoke-fields"):
                if self.kind == "event":
                    with Horizontal(classes="field"):
                        yield Label("event name")
                        yield Input(
                            self.target,
                            placeholder="name, e.g. motion.detected",
                            id="event-name",
                            suggester=SuggestFromList(self.event_names, case_sensitive=True),
                        )
                    yield Static(self._payload_line(), id="payload", classes="field-hint")
                yield from self._field_rows(self.remembered)
            with Horizontal(id="invoke-buttons"):
                yield Button(verb.capitalize(), id="run", variant="primary", compact=True)
                yield Button("Close", id="close", compact=True)
            with VerticalScroll(id="invoke-result"):
                yield Static(Text("Enter or Ctrl+R runs it; Esc closes.", style="dim"), id="result")
        yield Footer()

    def _field_rows(self, typed: dict[str, str] | None = None) -> list[Widget]:
        rows: list[Widget] = [
            FormField(f, text=(typed or {}).get(f.name) or None) for f in self.fields()
        ]
        if self._wants_extra():
            extra = Horizontal(
                Label("arguments"),
                Input(
                    (typed or {}).get("", ""),
                    placeholder="e.g. room=hall  (key=value, JSON)",
                    id="extra",
                ),
                classes="field",
            )
            rows.append(extra)
        return rows

    def _payload_line(self) -> Text:
        contract = self.contract
        if self.kind != "event" or not self.target:
            return Text("")
        if contract is None:
            return Text("payload: not described (no listener of this exact name)", style="dim")
        if contract.declared:
            return Text(f"payload: {contract.payload_type or 'declared'} (declared)", style="dim")
        return Text("payload: inferred from its listeners", style="dim")

    def on_mount(self) -> None:
        inputs = [w for w in self.query("Input, Select") if w.id != "event-name"]
        if self.kind == "event" and self.target and inputs:
            # The event was chosen (a listener's row, the palette): what is
            # left to type is its arguments.
            inputs[0].focus()
        elif self.kind == "event":
            self.query_one("#event-name", Input).focus()
        elif inputs:
            inputs[0].focus()
        else:  # nothing to type: Enter presses Call
            self.query_one("#run", Button).focus()

    def values(self) -> dict[str, str]:
        """The text typed in each text field, by parameter name."""
        return {row.field.name: row.current_text() for row in self.query(FormField)}

    def rows(self) -> dict[str, FormField]:
        """Each parameter's field, by name."""
        return {row.field.name: row for row in self.query(FormField)}

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "event-name" and self._described != event.value.strip():
            self.describe_event(event.value.strip())  # the fields of that event first
            return
        self.action_run()

    @on(Input.Blurred, "#event-name")
    def _name_left(self, event: Input.Blurred) -> None:
        name = event.value.strip()
        if name and name != self._described:
            self.describe_event(name)

    @work(exclusive=True, group="contract", exit_on_error=False)
    async def describe_event(self, name: str) -> None:
        """Rebuild the fields for event ``name``, from its contract."""
        typed = self.values()
        await self.load_contract(name)
        if self.contract is not None and self.contract.name != name:
            self.contract = None
        self._described = name
        self.target = name
        container = self.query_one("#invoke-fields", VerticalScroll)
        for row in [*self.query(FormField), *self.query("#extra").results()]:
            await (row.parent if row.id == "extra" and row.parent is not None else row).remove()
        self.query_one("#payload", Static).update(self._payload_line())
        rows = self._field_rows(typed)
        if rows:
            await container.mount(*rows)
            first = self.query("FormField Input, FormField Select, #extra")
            if first:
                first.first().focus()

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#close")
    def _close_pressed(self) -> None:
        self.action_close()

    def action_close(self) -> None:
        """Close the form; a call still running goes on, and the user is told how to stop it."""
        if self.running is not None and not self.running.done():
            self.app.notify(
                f"{self.target} runs on in the bus: x on it in the Commands tab cancels it"
            )
        self.dismiss()

    def action_run(self) -> None:
        """Read the form, have the bus check it, and run the command (or fire the event)."""
        if self.running is not None:
            # One call at a time: a second would leave the first beyond Ctrl+G's reach.
            self.notify(
                f"{self.target} is still running: Ctrl+G cancels it, Esc leaves it running",
                severity="warning",
            )
            return
        result = self.query_one("#result", Static)
        name = self.target
        if self.kind == "event":
            name = self.query_one("#event-name", Input).value.strip()
            if not name:
                result.update(Text("name the event to fire", style="bold red"))
                return
        try:
            args, kwargs, extra = self._arguments()
        except ArgumentError as exc:
            result.update(describe_error(exc))
            self.outcome = self.Finished(name, error=exc)
            self.post_message(self.outcome)
            return
        if self.memory is not None:
            self.memory[(self.kind, name)] = {**self.values(), "": extra}
        if self.kind == "command" and self.confirm is not None:
            self.confirm(name, lambda: self._start(name, args, kwargs))
            return
        self._start(name, args, kwargs)

    def _start(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        self.query_one("#result", Static).update(Text("checking…", style="dim"))
        self.run_it(name, args, kwargs)

    def action_copy(self) -> None:
        """Copy the call as the form stands: a busctl line, Python or JSON-RPC."""
        from .copy_screen import CopyScreen

        name = self.target
        if self.kind == "event":
            name = self.query_one("#event-name", Input).value.strip()
        try:
            args, kwargs, _ = self._arguments()
        except ArgumentError as exc:
            self.query_one("#result", Static).update(describe_error(exc))
            return
        self.app.push_screen(CopyScreen(name or "?", args, kwargs, self.kind))

    def _arguments(self) -> tuple[list[Any], dict[str, Any], str]:
        """The form's arguments as a call sends them, and the extra text typed.

        Raises:
            ArgumentError: a field (marked with why) or the extra text cannot be read.
        """
        given: list[tuple[Field, Any]] = []
        for index, row in enumerate(self.query(FormField), start=1):
            try:
                present, value = row.read(index)
            except ArgumentError as exc:
                row.show_error(f"cannot read it: {exc.reason}")
                raise
            if present:
                given.append((row.field, value))
        extra = self.query_one("#extra", Input).value if self.query("#extra") else ""
        args, kwargs = arguments(given, extra)
        return args, kwargs, extra

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
