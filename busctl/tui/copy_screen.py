"""“Copy as”: a call or an event as a ``busctl`` line, a Python snippet or a JSON-RPC line.

    app.push_screen(CopyScreen("lights.turn_on", ["hall"], {"brightness": 40}))

``b``, ``p`` or ``j`` picks the form (``busctl._copy``); it goes to the
clipboard through the terminal (OSC 52, where the terminal allows it) and
is shown in a notification, so it can be copied by hand where it does not.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from busctl._copy import copy_as
from busctl.render.text import visible

from ._format import shown

__all__ = ["CopyScreen"]

_CHOICES = (
    ("b", "busctl", "a busctl line"),
    ("p", "python", "Python"),
    ("j", "json-rpc", "JSON-RPC"),
)


class CopyScreen(ModalScreen[str | None]):
    """Choose how to copy the call; dismissed with the text copied (``None``: cancelled)."""

    DEFAULT_CSS = """
    CopyScreen { align: center middle; }
    CopyScreen > Vertical {
        width: 90%; max-width: 110; height: auto; border: thick $primary; background: $surface;
        padding: 1 2;
    }
    CopyScreen Static { margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"copy('{fmt}')", label) for key, fmt, label in _CHOICES),
        Binding("escape,q", "app.pop_screen", "Close"),
    ]

    def __init__(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        kind: Literal["command", "event"] = "command",
    ) -> None:
        super().__init__()
        self.target = name
        self.args = list(args)
        self.kwargs = dict(kwargs)
        self.kind: Literal["command", "event"] = kind

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(shown(f"copy {self.target} as:  b busctl · p Python · j JSON-RPC"))
            for _, fmt, _ in _CHOICES:
                yield Static(shown(self.text(fmt), "dim"), id=f"copy-{fmt}")

    def text(self, fmt: str) -> str:
        """The call as ``fmt``."""
        return copy_as(fmt, self.target, self.args, self.kwargs, kind=self.kind)

    def action_copy(self, fmt: str) -> None:
        """Copy the call as ``fmt``: to the clipboard (OSC 52), and in a notification."""
        text = self.text(fmt)
        self.app.copy_to_clipboard(text)
        # Not every terminal lets OSC 52 through: the text stays readable to copy by hand.
        self.app.notify(visible(text), title=f"copied as {fmt}", markup=False, timeout=10)
        self.dismiss(text)
