"""The form to call a command or fire an event, built from its signature.

    app.push_screen(InvokeScreen(source, "command", command_entry))
    app.push_screen(InvokeScreen(source, "event", listener_entry_or_None, name="motion.detected"))

One input per parameter, defaults filled in (or what the form was last run
with, when the app keeps a ``memory``) and the type as a hint. Values
are read like the REPL reads them (``busctl._args``: JSON or Python literals,
never ``eval``); a parameter annotated ``str`` takes the text as typed unless
it is quoted. The call runs without blocking the UI; the result, or the error
with the handler's traceback, shows below the form, and the form stays open to
run again. ``y`` copies the call as the form stands (a ``busctl`` line,
Python or JSON-RPC).
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Static

from busctl._args import ArgumentError, parse_args, parse_value, split_line
from busctl.render.text import visible

from ._format import shown
from ._spans import pretty

if TYPE_CHECKING:
    from ._source import Source

__all__ = ["InvokeScreen", "describe_error", "read_form"]

Kind = Literal["command", "event"]


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


def read_form(
    params: list[dict[str, Any]], values: dict[str, str], extra: str = ""
) -> tuple[list[Any], dict[str, Any]]:
    """The ``args`` and ``kwargs`` a filled-in form stands for.

    Args:
        params: the ``params`` of an ``inspect()`` entry.
        values: the text typed for each parameter, by name.
        extra: free arguments (``3 room=hall``) for events without a signature.

    A field left empty is left out. Whether the arguments bind to the
    signature (a required one missing, say) is the bus's to check: it answers
    with the signature, and the form shows that answer.

    Raises:
        ArgumentError: a value cannot be read.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for index, param in enumerate(params, start=1):
        name = str(param["name"])
        text = values.get(name, "").strip()
        kind = param.get("kind", "positional_or_keyword")
        if not text:
            continue
        if kind == "var_positional":
            more, _ = parse_args(split_line(text))
            args.extend(more)
            continue
        if kind == "var_keyword":
            _, more_kw = parse_args(split_line(text))
            kwargs.update(more_kw)
            continue
        if param.get("annotation") == "str" and text[0] not in "\"'":
            value: Any = text
        else:
            value = parse_value(text, index=index)
        if kind == "positional_only":
            args.append(value)
        else:
            kwargs[name] = value
    if extra.strip():
        more_args, more_kwargs = parse_args(split_line(extra))
        args.extend(more_args)
        kwargs.update(more_kwargs)
    return args, kwargs


def _hint(param: dict[str, Any]) -> str:
    annotation = param.get("annotation") or "any"
    kind = param.get("kind")
    if kind == "var_positional":
        return visible(f"*{annotation}: values separated by spaces")
    if kind == "var_keyword":
        return visible(f"**{annotation}: key=value …")
    return visible(f"{annotation}, {'required' if param.get('required') else 'optional'}")


def _label(param: dict[str, Any]) -> str:
    stars = {"var_positional": "*", "var_keyword": "**"}.get(str(param.get("kind")), "")
    annotation = param.get("annotation")
    text = visible(f"{stars}{param['name']}" + (f": {annotation}" if annotation else ""))
    if len(text) > 21:
        text = text[:20] + "…"
    return text


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
    InvokeScreen .field Input { border: none; height: 1; padding: 0 1; width: 1fr; }
    InvokeScreen #invoke-buttons { height: 1; margin-top: 1; }
    InvokeScreen #invoke-buttons Button { min-width: 10; margin-right: 2; }
    InvokeScreen #invoke-result { height: 1fr; border-top: solid $primary-darken-2; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Close"),
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("ctrl+y", "copy", "Copy as", priority=True),
    ]

    @dataclass
    class Finished(Message):
        """A run ended: ``result`` on success, ``error`` otherwise."""

        name: str
        result: Any = None
        error: BaseException | None = None

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
        self.outcome: InvokeScreen.Finished | None = None
        self.remembered = (memory or {}).get((kind, self.target), {})

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
                for param in self.params:
                    default = param.get("default")
                    text = self.remembered.get(
                        str(param["name"]), "" if default is None else str(default)
                    )
                    with Horizontal(classes="field"):
                        yield Label(_label(param), markup=False)
                        yield Input(
                            text,
                            placeholder=_hint(param),
                            id=f"param-{param['name']}",
                            tooltip=Text(_hint(param)),  # list[str] is not markup
                        )
                if self.kind == "event" and not self.params:
                    with Horizontal(classes="field"):
                        yield Label("arguments")
                        yield Input(
                            self.remembered.get("", ""),
                            placeholder="e.g. room=hall  (key=value, JSON)",
                            id="extra",
                        )
            with Horizontal(id="invoke-buttons"):
                yield Button(verb.capitalize(), id="run", variant="primary", compact=True)
                yield Button("Close", id="close", compact=True)
            with VerticalScroll(id="invoke-result"):
                yield Static(Text("Enter or Ctrl+R runs it; Esc closes.", style="dim"), id="result")

    def on_mount(self) -> None:
        inputs = list(self.query(Input))
        if self.kind == "event" and self.target and len(inputs) > 1:
            # The event was chosen (a listener's row, the palette): what is
            # left to type is its arguments.
            inputs[1].focus()
        elif inputs:
            inputs[0].focus()
        else:  # nothing to type: Enter presses Call
            self.query_one("#run", Button).focus()

    def values(self) -> dict[str, str]:
        """The text typed for each parameter."""
        return {p["name"]: self.query_one(f"#param-{p['name']}", Input).value for p in self.params}

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#close")
    def _close_pressed(self) -> None:
        self.dismiss()

    def action_run(self) -> None:
        """Read the form and run the command (or fire the event)."""
        result = self.query_one("#result", Static)
        name = self.target
        if self.kind == "event":
            name = self.query_one("#event-name", Input).value.strip()
            if not name:
                result.update(Text("name the event to fire", style="bold red"))
                return
        try:
            extra = self.query_one("#extra", Input).value if self.query("#extra") else ""
            args, kwargs = read_form(self.params, self.values(), extra)
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
        self.query_one("#result", Static).update(Text("running…", style="dim"))
        if self.ran is not None:
            self.ran(name, args, kwargs)
        self.run_it(name, args, kwargs)

    def action_copy(self) -> None:
        """Copy the call as the form stands: a busctl line, Python or JSON-RPC."""
        from .copy_screen import CopyScreen

        name = self.target
        if self.kind == "event":
            name = self.query_one("#event-name", Input).value.strip()
        try:
            extra = self.query_one("#extra", Input).value if self.query("#extra") else ""
            args, kwargs = read_form(self.params, self.values(), extra)
        except ArgumentError as exc:
            self.query_one("#result", Static).update(describe_error(exc))
            return
        self.app.push_screen(CopyScreen(name or "?", args, kwargs, self.kind))

    @work(exclusive=True, group="invoke", exit_on_error=False)
    async def run_it(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Send the call and wait for its outcome without blocking the UI."""
        result = self.query_one("#result", Static)
        try:
            if self.kind == "command":
                value = await asyncio.wrap_future(self.source.execute(name, args, kwargs))
                outcome: Any = Group(
                    Text("result", style="bold green"),
                    shown(pretty(value), multiline=True),
                )
            else:
                value = await asyncio.wrap_future(self.source.fire(name, args, kwargs))
                outcome = shown(f"fired {name}: {value} listener(s) match", "bold green")
        except Exception as exc:
            result.update(describe_error(exc))
            self.outcome = self.Finished(name, error=exc)
        else:
            result.update(outcome)
            self.outcome = self.Finished(name, result=value)
        self.post_message(self.outcome)
