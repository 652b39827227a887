"""What the REPL knows about the bus, and Tab completion built on it.

    registry = Registry()
    registry.update(client.inspect())
    completer = ReplCompleter(registry, verbs={"help": "Show help."})
    [c.text for c in completer.get_completions(Document("lights.turn_on kitchen b"), event)]
    # ['brightness=']

The registry is a snapshot of ``inspect()`` (commands with their parameters,
listeners with their patterns) plus the event names seen go by; the REPL
refreshes it before each prompt, so completion follows the bus as services
come and go.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

# The bus's own matcher (linear, never backtracking), so the REPL routes as the bus does.
from bus.patterns import pattern_matches

from .._copy import FORMATS
from .._types import Contract, Contracts, Field, choice_text
from ..render.text import visible

__all__ = ["Registry", "ReplCompleter", "pattern_matches"]

# The parameter kinds that can be given as ``name=value``.
_KEYWORD_KINDS = {"positional_or_keyword", "keyword_only"}
_SEEN_LIMIT = 1000  # event names remembered from activity; a bound against name floods
_CALL_FORM = re.compile(r"\s*([^\s(]+)\((.*)\Z", re.DOTALL)
_GIVEN_KEYWORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=")
_TYPING_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S*)\Z")


class Registry:
    """The bus's commands and listeners as last inspected, and the events seen.

    ``update`` and the readers run on the REPL's thread; ``saw_event`` may be
    called from the client's reader thread (it takes a lock).
    """

    def __init__(self) -> None:
        self.commands: dict[str, dict[str, Any]] = {}
        self.listeners: list[dict[str, Any]] = []
        self.services: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] = {}
        self.contracts = Contracts()
        self.schema_stale = True  # no schema taken yet for these names
        self._seen: dict[str, None] = {}  # insertion-ordered set
        self._lock = threading.Lock()

    def update(self, snapshot: Mapping[str, Any]) -> bool:
        """Take a fresh ``inspect()`` snapshot; return whether the names changed.

        When a name or a signature changed, the schema is stale (``schema_stale``)
        until ``update_schema`` takes a new one.
        """
        before = (set(self.commands), self.patterns())
        signatures = self._signatures()
        self.snapshot = dict(snapshot)
        self.commands = {
            str(entry["name"]): entry
            for entry in snapshot.get("commands", [])
            if isinstance(entry, dict) and "name" in entry
        }
        self.listeners = [e for e in snapshot.get("listeners", []) if isinstance(e, dict)]
        self.services = [e for e in snapshot.get("services", []) if isinstance(e, dict)]
        if signatures != self._signatures():
            self.schema_stale = True
        return before != (set(self.commands), self.patterns())

    def _signatures(self) -> tuple[Any, ...]:
        return tuple(
            sorted((str(e.get("name") or e.get("pattern")), str(e.get("signature"))) for e in
                   [*self.commands.values(), *self.listeners])
        )  # fmt: skip

    def update_schema(self, document: Mapping[str, Any] | None) -> None:
        """Take the bus's ``schema`` document (``None``: the bus has none to give)."""
        self.contracts = Contracts(document)
        self.schema_stale = False

    def contract_of(self, name: str, *, event: bool = False) -> Contract | None:
        """The typed contract of command ``name`` (or event), if the bus described it."""
        if event:
            return self.contracts.event(name)
        entry = self.commands.get(name)
        return self.contracts.command(name, entry.get("params") if entry else None)

    def saw_event(self, name: str) -> None:
        """Remember an event name seen in the activity (thread-safe)."""
        with self._lock:
            if name in self._seen:
                return
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen.pop(next(iter(self._seen)))
            self._seen[name] = None

    def patterns(self) -> list[str]:
        """The listeners' patterns, in delivery order, without repeats."""
        return list(dict.fromkeys(str(e.get("pattern", "")) for e in self.listeners))

    def event_names(self) -> list[str]:
        """Names worth offering after ``emit``: exact patterns, then events seen.

        A wildcard pattern offers its literal prefix (``lights.*`` offers
        ``lights.``), which is where the name must start.
        """
        with self._lock:
            seen = list(self._seen)
        names: dict[str, None] = {}
        for pattern in self.patterns():
            if "*" not in pattern:
                names[pattern] = None
            elif pattern.split("*", 1)[0]:
                names[pattern.split("*", 1)[0]] = None
        names.update(dict.fromkeys(seen))
        return list(names)

    def listeners_for(self, event: str) -> list[dict[str, Any]]:
        """The listeners whose pattern matches ``event``, in delivery order."""
        return [e for e in self.listeners if pattern_matches(str(e.get("pattern", "")), event)]

    def params_of(self, name: str, *, event: bool = False) -> list[dict[str, Any]]:
        """The parameters of command ``name``, or of the listeners of event ``name``."""
        if not event:
            entry = self.commands.get(name)
            return list(entry.get("params", [])) if entry else []
        params: dict[str, dict[str, Any]] = {}
        for listener in self.listeners_for(name):
            for param in listener.get("params", []):
                params.setdefault(str(param.get("name")), param)
        return list(params.values())


class ReplCompleter(Completer):
    """Tab completion: verbs and command names first, event names after ``emit``,
    ``kw=`` argument names after a command name (both the ``NAME ARG...`` and the
    ``NAME(kw=...)`` forms).

    Args:
        registry: what the bus has (read at each completion, so refreshes show).
        verbs: the REPL's own verbs and their one-line help.
    """

    def __init__(self, registry: Registry, verbs: Mapping[str, str]) -> None:
        self.registry = registry
        self.verbs = dict(verbs)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        call = _CALL_FORM.match(text.removeprefix("call ").removeprefix("emit "))
        if call is not None:
            yield from self._call_form(call.group(1), call.group(2))
            return
        stripped = text.lstrip()
        if stripped.startswith("?") and " " not in stripped:
            yield from self._names(stripped[1:], help_targets=True)
            return
        words = stripped.split()
        current = "" if not words or text[-1:].isspace() else words[-1]
        done = words if not current else words[:-1]
        if not done:
            yield from self._names(current, verbs=True)
            return
        head = done[0]
        registry = self.registry
        if head in self.verbs and head not in registry.commands:
            yield from self._after_verb(head, done[1:], current)
            return
        yield from self._arguments(head, done[1:], current)

    def _after_verb(self, verb: str, args: list[str], current: str) -> Iterator[Completion]:
        registry = self.registry
        if verb in {"help", "?"} and not args:
            yield from self._names(current, help_targets=True)
        elif verb in {"call", "who-handles", "stub", "unstub"} and not args:
            yield from self._names(current)
        elif verb == "copy" and not args:
            yield from _matching(current, [(f, "copy as") for f in FORMATS])
        elif verb in {"hold", "history", "unhold"} and not args:
            names = [*registry.commands, *registry.event_names(), *registry.patterns()]
            yield from _matching(current, ((n, "") for n in dict.fromkeys(names)))
        elif verb == "call":
            yield from self._arguments(args[0], args[1:], current)
        elif verb == "emit" and not args:
            yield from _matching(current, ((n, "event") for n in registry.event_names()))
        elif verb == "emit":
            yield from self._arguments(args[0], args[1:], current, event=True)
        elif verb == "monitor":
            names = [*registry.event_names(), *registry.patterns(), *registry.commands]
            yield from _matching(current, ((n, "") for n in dict.fromkeys(names)))
        elif verb == "verbose" and not args:
            yield from _matching(current, [("on", ""), ("off", "")])

    def _names(
        self, prefix: str, *, verbs: bool = False, help_targets: bool = False
    ) -> Iterator[Completion]:
        candidates: list[tuple[str, str]] = [
            (name, ("[stubbed] " if entry.get("stub") else "") + str(entry.get("signature", "")))
            for name, entry in self.registry.commands.items()
        ]
        if verbs or help_targets:
            own = [(verb, help_) for verb, help_ in self.verbs.items() if verb != "?"]
            candidates += [c for c in own if c[0] not in self.registry.commands]
        if help_targets:
            candidates += [(n, "event") for n in self.registry.event_names()]
        yield from _matching(prefix, dict(candidates).items())

    def _arguments(
        self, name: str, given: list[str], current: str, *, event: bool = False
    ) -> Iterator[Completion]:
        """After ``NAME``: the value of the argument being typed, or the names left."""
        contract = self.registry.contract_of(name, event=event)
        typing_value = _TYPING_VALUE.match(current)
        if typing_value is not None:  # key=partial: the choices of that parameter
            if contract is not None:
                found = contract.field(typing_value.group(1))
                yield from _choices(found, typing_value.group(2))
            return
        # Positional arguments already typed fill the first parameters.
        positional = sum(1 for word in given if not _GIVEN_KEYWORD.match(word))
        if contract is not None:
            yield from _choices(contract.positional(positional), current)
        used = {m.group(1) for word in given if (m := _GIVEN_KEYWORD.match(word))}
        params = self.registry.params_of(name, event=event)
        yield from self._keywords(params, contract, used, positional, current)

    def _keywords(
        self,
        params: Iterable[Mapping[str, Any]],
        contract: Contract | None,
        used: set[str],
        positional: int,
        current: str,
    ) -> Iterator[Completion]:
        options = []
        if contract is not None:  # the bus's own account: types, choices, defaults
            filled = {f.name for f in [f for f in contract.fields if f.positional][:positional]}
            options = [
                (f"{f.name}=", _describe_field(f))
                for f in contract.fields
                if f.keyword and f.name not in used and f.name not in filled
            ]
        else:
            for index, param in enumerate(params):
                name = str(param.get("name"))
                if param.get("kind") not in _KEYWORD_KINDS or name in used:
                    continue
                if index < positional and param.get("kind") == "positional_or_keyword":
                    continue
                options.append((f"{name}=", _describe_param(param)))
        yield from _matching(current, options)

    def _call_form(self, name: str, inside: str) -> Iterator[Completion]:
        # Only the fragment after the last "(" or "," outside quotes matters.
        parts = re.split(r"[,(]", inside)
        fragment = parts[-1].lstrip()
        # ``emit NAME(...)`` is not a call form; a name that is no command is an event.
        event = name not in self.registry.commands
        contract = self.registry.contract_of(name, event=event)
        typing_value = _TYPING_VALUE.match(fragment)
        if typing_value is not None:
            if contract is not None:
                yield from _choices(contract.field(typing_value.group(1)), typing_value.group(2))
            return
        if not re.fullmatch(r"[A-Za-z_0-9\"']*", fragment):
            return
        used = set(_GIVEN_KEYWORD.findall(inside))
        before = [p for p in parts[:-1] if p.strip() and not _GIVEN_KEYWORD.match(p.strip())]
        if contract is not None and not used:
            yield from _choices(contract.positional(len(before)), fragment)
        if not re.fullmatch(r"[A-Za-z_0-9]*", fragment):
            return
        params = self.registry.params_of(name, event=event)
        yield from self._keywords(params, contract, used, len(before), fragment)


def _choices(found: Field | None, partial: str) -> Iterator[Completion]:
    """The values of an enum or ``Literal`` parameter that start with ``partial``.

    A value is written as it is typed (``heat``, ``"two words"``, ``3``); one
    begun with a quote is finished with the same quote.
    """
    if found is None or not found.choices:
        return
    quote = partial[:1] if partial[:1] in {'"', "'"} else ""
    meta = visible(found.type)
    for value in found.choices:
        if quote and isinstance(value, str):
            text = f"{quote}{value}{quote}"
        elif quote:
            continue  # a number or true typed with a quote would be a string
        else:
            text = choice_text(value)
        if text.startswith(partial) and text != partial:
            yield Completion(text, start_position=-len(partial), display_meta=meta)


def _describe_field(found: Field) -> str:
    text = found.type
    listed = " | ".join(choice_text(v, quote=True) for v in found.choices)
    if found.choices and listed not in text:  # a Literal's type is its choices already
        text += ": " + " | ".join(choice_text(v) for v in found.choices)
    if found.has_default and not found.required:
        text += f" = {found.default_text()}"
    return text


def _describe_param(param: Mapping[str, Any]) -> str:
    text = str(param.get("annotation") or "")
    if not param.get("required", True) and param.get("default") is not None:
        text += f" = {param.get('default')}"
    return text.strip()


def _matching(prefix: str, candidates: Iterable[tuple[str, str]]) -> Iterator[Completion]:
    for name, meta in sorted(candidates):
        if name.startswith(prefix) and name != prefix:  # nothing to add: no noise
            # Signatures and defaults come from the bus: prompt_toolkit shows C0/C1
            # as ^X but writes a bidi override or U+2028 as is.
            shown = visible(meta) if meta else None
            yield Completion(name, start_position=-len(prefix), display_meta=shown)
