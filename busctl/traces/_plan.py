"""Replay plans: which recorded events (and, opt-in, commands) to send again.

    from busctl.traces import BusTarget, Replayer, plan_replay, read_trace_file

    plan = plan_replay(read_trace_file("traces/sample.jsonl"), commands=True)
    report = Replayer(plan, BusTarget(bus), fast=True).run()
    print(report.render())          # differences, and everything left out

What is replayed: the outermost recorded work only — events and commands that
nothing else in the file caused. What they caused (nested commands, events
fired by handlers) happens again by itself on a bus running the same
services. A command that is not replayed (``--commands`` not given, or not
read-only without ``--all-commands``) is looked into instead: the events and
commands it caused are replayed in its place, so listeners still see them.
Anything left out is listed in the report with the reason, never dropped
silently.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._file import TraceFile
from ._model import NOT_JSON, Span

__all__ = ["Outcome", "ReplayPlan", "Step", "plan_replay"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a command ended: its result as JSON data, or its error.

    ``value`` is ``NOT_JSON`` when the result could not be kept as JSON
    (truncated or not serialisable): such a result cannot be compared.
    """

    ok: bool
    value: Any = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def comparable(self) -> bool:
        """Whether it can be compared with another outcome."""
        return not (self.ok and self.value is NOT_JSON)

    def same_as(self, other: Outcome) -> bool:
        """Equal results (as JSON), or errors of the same type and message."""
        if self.ok != other.ok:
            return False
        if self.ok:
            return bool(self.value == other.value)
        return (self.error_type, self.error_message) == (other.error_type, other.error_message)

    def describe(self) -> str:
        """``result: {...}`` or ``error: SensorError: message``."""
        if self.ok:
            if self.value is NOT_JSON:
                return "result: (not JSON)"
            return "result: " + json.dumps(self.value, ensure_ascii=False, sort_keys=True)
        return f"error: {self.error_type}: {self.error_message}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        if self.ok:
            return {"result": None if self.value is NOT_JSON else self.value}
        return {"error": {"type": self.error_type, "message": self.error_message}}


def _recorded_outcome(client: Span) -> Outcome | None:
    server = client.server
    span = server or client
    if span.error:
        etype = span.error_type or "Error"
        message = span.status_message or ""
        short = etype.rsplit(".", 1)[-1]
        if message.startswith(f"{short}: "):
            message = message[len(short) + 2 :]
        elif message == short:
            message = ""
        return Outcome(False, error_type=etype, error_message=message)
    if server is None:
        return None
    return Outcome(True, server.json("bus.result"))


@dataclass(eq=False, slots=True)
class Step:
    """One recorded event or command to send again.

    Attributes:
        index: its number in the plan, from 1.
        kind: ``event`` or ``command``.
        name: the event or command name.
        args: positional arguments (``NOT_JSON`` if they were not recorded as JSON).
        kwargs: keyword arguments (``NOT_JSON`` likewise).
        offset_ns: when it was sent, from the first step.
        span: the recorded PRODUCER (event) or CLIENT (command) span.
        recorded: a command's recorded outcome (``None`` for an event).
        deliveries: an event's recorded listeners, ``(service, pattern)`` in order.
        problem: why it cannot be sent, or ``None``.
    """

    index: int
    kind: Literal["event", "command"]
    name: str
    args: Any
    kwargs: Any
    offset_ns: int
    span: Span
    recorded: Outcome | None = None
    deliveries: list[tuple[str, str]] = field(default_factory=list)
    problem: str | None = None

    def call_text(self) -> str:
        """``name(args, kw=value)`` as it will be sent."""
        if self.args is NOT_JSON or self.kwargs is NOT_JSON:
            return f"{self.name}(<not JSON>)"
        parts = [json.dumps(a, ensure_ascii=False) for a in self.args]
        parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (what ``--dry-run --json`` prints)."""
        out: dict[str, Any] = {
            "index": self.index,
            "kind": self.kind,
            "name": self.name,
            "args": None if self.args is NOT_JSON else self.args,
            "kwargs": None if self.kwargs is NOT_JSON else self.kwargs,
            "offset_ms": round(self.offset_ns / 1e6, 3),
            "trace_id": self.span.trace_id,
            "span_id": self.span.span_id,
            "line": self.span.line,
        }
        if self.recorded is not None:
            out["recorded"] = self.recorded.to_json()
        if self.deliveries:
            out["deliveries"] = [list(d) for d in self.deliveries]
        if self.problem:
            out["problem"] = self.problem
        return out


@dataclass(slots=True)
class ReplayPlan:
    """What a replay will send, and what it leaves out and why.

    Attributes:
        steps: events and commands to send, in recorded order (those with a
            ``problem`` are listed in the report, not sent).
        left_out: ``(span, reason)`` for recorded work deliberately not sent.
        filtered: how many steps ``only``/``exclude`` removed.
        commands: whether commands are replayed; ``all_commands``: even the
            ones not declared read-only.
    """

    steps: list[Step]
    left_out: list[tuple[Span, str]]
    filtered: int
    commands: bool
    all_commands: bool

    @property
    def events(self) -> list[Step]:
        """The event steps."""
        return [s for s in self.steps if s.kind == "event"]


def _step_of(span: Span, kind: Literal["event", "command"]) -> Step:
    args = span.json("bus.args")
    kwargs = span.json("bus.kwargs") if "bus.kwargs" in span.attributes else {}
    problem = None
    if args is NOT_JSON or kwargs is NOT_JSON:
        key = "bus.args" if args is NOT_JSON else "bus.kwargs"
        if span.attributes.get(key + ".truncated"):
            problem = "arguments were truncated when recorded"
        elif span.attributes.get(key + ".lossy"):
            problem = "arguments were not JSON when recorded"
        else:
            problem = "arguments were not recorded"
    elif not isinstance(args, list) or not isinstance(kwargs, dict):
        problem = "arguments were not recorded as a list and an object"
    name = (span.command if kind == "command" else span.event) or span.name
    step = Step(0, kind, name, args, kwargs, span.start_ns, span, problem=problem)
    if kind == "command":
        step.recorded = _recorded_outcome(span)
    else:
        step.deliveries = [
            (c.service, str(c.attributes.get("bus.listener.pattern", "?")))
            for c in span.children
            if c.kind == "consumer"
        ]
    return step


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def plan_replay(
    trace_file: TraceFile,
    *,
    only: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    commands: bool = False,
    all_commands: bool = False,
    readonly: Callable[[str], bool | None] | None = None,
) -> ReplayPlan:
    """Choose what to send: the outermost recorded events (and commands).

    Args:
        only: name patterns; only matching events and commands are sent.
        exclude: name patterns never sent.
        commands: re-execute commands too (read-only ones, see ``all_commands``).
        all_commands: re-execute commands that are not declared read-only.
        readonly: tells whether a command is read-only on the target bus
            (``None``: unknown, e.g. for a dry run without a bus; such
            commands are planned and checked when sent).
    """
    all_commands = all_commands and commands
    steps: list[Step] = []
    left_out: list[tuple[Span, str]] = []
    filtered = 0

    def visit(span: Span) -> None:
        nonlocal filtered
        if span.kind == "producer":
            if (only and not _matches(span.operation, only)) or _matches(span.operation, exclude):
                filtered += 1
                return
            steps.append(_step_of(span, "event"))
            return
        if span.kind == "client":
            name = span.operation
            wanted = not ((only and not _matches(name, only)) or _matches(name, exclude))
            reason = None
            if not commands:
                reason = "commands are replayed only with --commands"
            elif not wanted:
                reason = "left out by --only/--exclude"
            elif not all_commands and readonly is not None and readonly(name) is False:
                reason = "not declared read-only (use --all-commands to re-execute it)"
            if reason is None:
                steps.append(_step_of(span, "command"))
                return
            if wanted:
                left_out.append((span, reason))
            else:
                filtered += 1
        for child in span.children:
            visit(child)

    for trace in trace_file.traces():
        for root in trace.roots:
            visit(root)
    steps.sort(key=lambda s: (s.span.start_ns, s.span.line))
    origin = steps[0].offset_ns if steps else 0
    for number, step in enumerate(steps, 1):
        step.index = number
        step.offset_ns -= origin
    return ReplayPlan(steps, left_out, filtered, commands, all_commands)
