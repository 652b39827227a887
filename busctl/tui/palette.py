"""The bus's commands and events in Textual's command palette (Ctrl+P).

    class BusctlApp(App):
        COMMANDS = App.COMMANDS | {BusCommands}

Each command of the bus is a hit ``call NAME`` (opens its form); each
listener's exact pattern is ``fire NAME``; and ``trace of the last error``
opens the trace of the most recent failure.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from busctl.render.activity import activity_view

from ._format import markup_safe

if TYPE_CHECKING:
    from .app import BusctlApp

__all__ = ["BusCommands"]


class BusCommands(Provider):
    """Commands and events of the attached bus, read from the latest ``inspect``."""

    def _entries(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: BusctlApp = self.app  # type: ignore[assignment]
        inspected = app.inspected or {}
        out: list[tuple[str, str, Callable[[], Any]]] = []
        for command in inspected.get("commands", ()):
            name = str(command.get("name"))
            # Help is read as markup: a signature's list[str] lost its [str].
            help_text = markup_safe(f"{command.get('signature', '')}  ({command.get('owner', '')})")
            out.append((f"call {name}", help_text, partial(app.open_invoke, name)))
        seen: set[str] = set()
        for listener in inspected.get("listeners", ()):
            pattern = str(listener.get("pattern"))
            if pattern in seen or any(c in pattern for c in "*?["):
                continue
            seen.add(pattern)
            help_text = markup_safe(
                f"event to {listener.get('owner', '')}: {listener.get('signature', '')}"
            )
            out.append((f"fire {pattern}", help_text, partial(app.open_fire, pattern)))
        out.append(("fire an event…", "any name, with arguments", partial(app.open_fire, None)))
        if app.last_error is not None:
            error = app.last_error
            help_text = markup_safe(f"{error.get('name')}: {activity_view(error).detail}")
            out.append(("trace of the last error", help_text, app.action_last_error))
        return out

    async def discover(self) -> Hits:
        for text, help_text, command in self._entries():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, command in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)
