"""The form to edit a held item's arguments and let it go.

    app.push_screen(EditScreen(source, item, params))

One field per parameter, filled with what the item holds (JSON; a ``str``
parameter as its text), and one with all the arguments as JSON. What you
change is sent as ``release`` with ``set`` (the fields changed) or ``args``
and ``kwargs`` (the JSON field changed); the bus converts and checks it as
it checks a call, and says what does not fit, which is shown here while the
item stays held.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from busctl._args import ArgumentError, parse_value
from busctl._intervene import edit_params
from busctl.render.intervene import arguments
from busctl.render.text import visible

from ._format import shown
from .invoke_screen import describe_error

if TYPE_CHECKING:
    from ._source import Source

__all__ = ["EditScreen", "field_texts"]

_EDITABLE = ("positional", "positional_or_keyword", "keyword_only")


def field_texts(item: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, str]:
    """The text of each parameter's field: the value the item holds for it ("" if none)."""
    args = list(item.get("args") or [])
    kwargs = dict(item.get("kwargs") or {})
    texts: dict[str, str] = {}
    position = 0
    for param in params:
        kind, name = param.get("kind"), str(param.get("name"))
        if kind not in _EDITABLE:
            continue
        if kind != "keyword_only" and position < len(args):
            value, found = args[position], True
            position += 1
        else:
            found = name in kwargs
            value = kwargs.get(name)
        if not found:
            texts[name] = ""
        elif param.get("annotation") == "str" and isinstance(value, str):
            texts[name] = value
        else:
            texts[name] = json.dumps(value, ensure_ascii=False)
    return texts


class EditScreen(ModalScreen[bool]):
    """Edit held item ``item``'s arguments (``params``: its handler's), then release it.

    Dismissed with ``True`` once released.
    """

    DEFAULT_CSS = """
    EditScreen { align: center middle; }
    EditScreen > #edit-box {
        width: 90%; max-width: 110; height: 80%; border: thick $warning; background: $surface;
        padding: 0 1;
    }
    EditScreen #edit-title { text-style: bold; height: 1; }
    EditScreen #edit-fields { height: auto; max-height: 60%; }
    EditScreen .field { height: 1; margin-top: 1; }
    EditScreen .field Label { width: 22; }
    EditScreen .field Input { border: none; height: 1; padding: 0 1; width: 1fr; }
    EditScreen #edit-buttons { height: 1; margin-top: 1; }
    EditScreen #edit-buttons Button { min-width: 10; margin-right: 2; }
    EditScreen #edit-result { height: 1fr; border-top: solid $primary-darken-2; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Close (still held)"),
        Binding("ctrl+r", "release", "Release", priority=True),
    ]

    def __init__(self, source: Source, item: dict[str, Any], params: list[dict[str, Any]]) -> None:
        super().__init__()
        self.source = source
        self.item = item
        self.params = [p for p in params if p.get("kind") in _EDITABLE]
        self.texts = field_texts(item, self.params)
        everything = {"args": item.get("args") or [], "kwargs": item.get("kwargs") or {}}
        self.all_text = json.dumps(everything, ensure_ascii=False)
        self.sent: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        item = self.item
        with Vertical(id="edit-box"):
            title = (
                f"held {item.get('kind')} {item.get('id')}: {item.get('name')} → "
                f"{item.get('service')}"
            )
            yield Label(visible(title), id="edit-title", markup=False)
            with VerticalScroll(id="edit-fields"):
                for param in self.params:
                    name = str(param["name"])
                    with Horizontal(classes="field"):
                        yield Label(visible(name)[:21], markup=False)
                        yield Input(
                            self.texts.get(name, ""),
                            placeholder=visible(param.get("annotation") or "any"),
                            id=f"edit-{name}",
                        )
                with Horizontal(classes="field"):
                    yield Label("all (JSON)")
                    yield Input(self.all_text, id="edit-all")
            with Horizontal(id="edit-buttons"):
                yield Button("Release", id="release", variant="warning", compact=True)
                yield Button("Close", id="close", compact=True)
            with VerticalScroll(id="edit-result"):
                hint = f"held with {arguments(item.get('args'), item.get('kwargs'), width=None)}"
                yield Static(shown(hint, "dim"), id="edit-outcome")

    def on_mount(self) -> None:
        inputs = list(self.query(Input))
        if inputs:
            inputs[0].focus()

    def changes(self) -> dict[str, Any]:
        """The ``release`` params for what was changed (``{}``: nothing was).

        Raises:
            ArgumentError: a value cannot be read.
        """
        everything = self.query_one("#edit-all", Input).value.strip()
        if everything != self.all_text:
            return edit_params([], everything)
        changes: dict[str, Any] = {}
        for param in self.params:
            name = str(param["name"])
            text = self.query_one(f"#edit-{name}", Input).value
            if text == self.texts.get(name, ""):
                continue
            stripped = text.strip()
            if not stripped and param.get("annotation") != "str":
                # Nothing to send: an empty field is no value (a held call keeps
                # the arguments it has, and `all (JSON)` can leave one out).
                raise ArgumentError(f"{name}: give a value, or edit `all (JSON)` to leave it out")
            if param.get("annotation") == "str" and stripped[:1] not in ("'", '"'):
                changes[name] = text
            else:
                changes[name] = parse_value(stripped)
        return {"set": changes} if changes else {}

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_release()

    @on(Button.Pressed, "#release")
    def _release_pressed(self) -> None:
        self.action_release()

    @on(Button.Pressed, "#close")
    def _close_pressed(self) -> None:
        self.dismiss(False)

    def action_release(self) -> None:
        """Send the edits (or none) with ``release``."""
        outcome = self.query_one("#edit-outcome", Static)
        try:
            params = {"id": self.item["id"], **self.changes()}
        except ArgumentError as exc:
            outcome.update(describe_error(exc))
            return
        outcome.update(Text("releasing…", style="dim"))
        self.send(params)

    @work(exclusive=True, group="edit", exit_on_error=False)
    async def send(self, params: dict[str, Any]) -> None:
        """Release without blocking the UI; an error keeps the form (and the item) open."""
        outcome = self.query_one("#edit-outcome", Static)
        try:
            await asyncio.wrap_future(self.source.request("release", params))
        except Exception as exc:
            outcome.update(describe_error(exc))
            return
        self.sent = params
        self.dismiss(True)
