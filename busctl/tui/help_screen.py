"""The help screen: what is where, and every key.

app.push_screen(HelpScreen())
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

__all__ = ["HelpScreen"]

HELP = """\
# busctl tui

A live view of one bus: its services, commands and listeners above, the
activity below. Everything updates while the bus runs; nothing you do here
waits for the bus.

| key | does |
|---|---|
| `1` … `5` | services, commands, listeners, replay (its path box), holds |
| `Tab` / `Shift+Tab` | move between panels |
| `Enter` | on a command: call it · on a listener: fire its event · on activity: open its trace |
| `c` | call the highlighted command |
| `f` | fire an event |
| `/` | filter the activity (name pattern, service, errors only) |
| `Esc` | leave a text box (filter, replay path) for its log or table; the text stays |
| `e` | activity: errors only on/off |
| `p` | pause / resume the activity log |
| `Ctrl+L` | clear the activity log |
| `t` | the trace of the last failure |
| `Ctrl+G` | in a form: cancel the call it is running |
| `x` | on a command: cancel the call of it this TUI started (its form may be closed) |
| `h` | hold the highlighted command's calls, listener's events or activity row's name |
| `y` | copy the highlighted call or event (a command: its last call) as busctl, Python, JSON-RPC |
| `m` | layout: split, tables only, activity only |
| `Ctrl+P` | command palette: every bus command and event |
| `r` | reconnect when the bus went away |
| `?` | this help |
| `q` / `Ctrl+Q` | quit |

**Trace view**: `↑`/`↓` move between spans, the detail pane shows the
arguments, result and exception; `n` jumps to the next failed span, `r`
reloads, `Esc` goes back. Bars share one time axis; `┄` is time spent queued
in a mailbox before the handler ran; red is a failure.

**Forms**: one field per parameter, with its type and default (filled in);
an enum or `Literal` parameter is a list of its values. Values are JSON or
Python literals (`42`, `[1, 2]`, `"text"`); a `str` parameter takes its text
as typed. The bus checks the values before anything is sent, and a value it
would refuse is marked on its field. `Enter` or `Ctrl+R` runs, `Esc` closes
(a call still running goes on in the bus), `Ctrl+Y` copies the call as it
stands. `Ctrl+G` cancels the running call: an `async def` handler is
interrupted; a sync one cannot be, and the form says so and waits for it. A
command's form opens with what it last ran with. With `--safe` (or
`safe = true` in `~/.config/busctl/config.toml`), a command not declared
read-only (`RO` column) asks first.

**Holds** (`5`): the holds set and what they hold, live; the tab counts the
items waiting. On a held item `Enter` releases it as it was, `e` edits its
arguments first (the bus checks them as it checks a call), `d` drops it (a
call fails with `DroppedByConsoleError`), `a` releases everything; `u` ends
a hold, and what it held goes on. A stubbed command is marked `[stubbed]`.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and panels, in a modal; any of Esc, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: thick $primary; background: $surface;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "app.pop_screen", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
