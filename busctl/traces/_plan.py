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
silently. A reason is a ``Reason``: a code and wording that names no flag or
key, so each face adds its own remedy (``Reason.text(hints)``: the CLI says
``--all-commands``, the TUI its key).

Recorded gaps longer than ``max_gap`` are shortened to it (a capture left
running overnight, a clock that jumped): each is listed in ``capped``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ..render.text import clipped, visible
from ._file import TraceFile
from ._model import NOT_JSON, Span

__all__ = [
    "DEFAULT_MAX_GAP",
    "Outcome",
    "Reason",
    "ReasonCode",
    "ReplayPlan",
    "Step",
    "plan_replay",
]

DEFAULT_MAX_GAP = 10.0
"""Seconds: a longer recorded gap between two steps is replayed as this long."""


class ReasonCode(StrEnum):
    """Why a recorded event or command is not replayed (``Reason.code``)."""

    COMMANDS_OFF = "commands-off"
    """Commands are not being replayed at all (events only)."""
    FILTERED = "filtered"
    """Left out by the name patterns (only / exclude)."""
    NOT_READONLY = "not-readonly"
    """A command not declared read-only, and side effects were not asked for."""
    ARGS_TRUNCATED = "args-truncated"
    """The arguments were cut short when recorded."""
    ARGS_NOT_JSON = "args-not-json"
    """The arguments were not JSON when recorded."""
    ARGS_MISSING = "args-missing"
    """No arguments were recorded."""
    ARGS_SHAPE = "args-shape"
    """The arguments were not recorded as a list and an object."""
    NO_SUCH_COMMAND = "no-such-command"
    """The command does not exist on the bus replayed onto."""
    SKIPPED = "skipped"
    """Skipped by the person stepping through the replay."""
    REFUSED = "refused"
    """The bus refused it (the detail says why)."""


_WORDING = {
    ReasonCode.COMMANDS_OFF: "commands are not replayed",
    ReasonCode.FILTERED: "left out by the name filters",
    ReasonCode.NOT_READONLY: "not declared read-only",
    ReasonCode.ARGS_TRUNCATED: "arguments were truncated when recorded",
    ReasonCode.ARGS_NOT_JSON: "arguments were not JSON when recorded",
    ReasonCode.ARGS_MISSING: "arguments were not recorded",
    ReasonCode.ARGS_SHAPE: "arguments were not recorded as a list and an object",
    ReasonCode.NO_SUCH_COMMAND: "the command no longer exists on this bus",
    ReasonCode.SKIPPED: "skipped while stepping",
    ReasonCode.REFUSED: "the bus refused it",
}


@dataclass(frozen=True, slots=True)
class Reason:
    """Why something recorded is not replayed: a code, and words that name no flag.

    ``str(reason)`` is the plain wording; ``reason.text(hints)`` adds the
    remedy a face offers for the code (``{ReasonCode.NOT_READONLY: "use
    --all-commands to re-execute it"}`` on the command line, a key in the
    TUI).

    Attributes:
        code: what kind of reason.
        detail: more about this case (what the bus said), or empty.
    """

    code: ReasonCode
    detail: str = ""

    def text(self, hints: Mapping[ReasonCode, str] | None = None) -> str:
        """The wording, with the detail and the face's remedy when it has one."""
        words = _WORDING[self.code]
        if self.detail:
            words += f": {self.detail}"
        hint = hints.get(self.code) if hints else None
        return f"{words} ({hint})" if hint else words

    def __str__(self) -> str:
        return self.text()

    def to_json(self, hints: Mapping[ReasonCode, str] | None = None) -> dict[str, str]:
        """``{"code": ..., "reason": ...}``, for ``--json``."""
        return {"code": self.code.value, "reason": self.text(hints)}


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
        offset_ns: when it is sent, from the first step: the recorded time,
            with gaps longer than the plan's ``max_gap`` shortened to it.
        span: the recorded PRODUCER (event) or CLIENT (command) span.
        recorded: a command's recorded outcome (``None`` for an event).
        deliveries: an event's recorded listeners, ``(service, pattern)`` in order.
        problem: why it cannot be sent, or ``None``.
        capped_gap_ns: the recorded gap before it, when that was longer than
            the plan's ``max_gap`` and shortened (``None`` otherwise).
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
    problem: Reason | None = None
    capped_gap_ns: int | None = None

    def call_text(self) -> str:
        """``name(args, kw=value)`` as it will be sent."""
        if self.args is NOT_JSON or self.kwargs is NOT_JSON:
            return f"{self.name}(<not JSON>)"
        parts = [json.dumps(a, ensure_ascii=False) for a in self.args]
        parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def shown(self, width: int = 400) -> str:
        """``call_text()`` for a person: one line, control characters visible, cut."""
        return clipped(visible(self.call_text()), width)

    def to_json(self, hints: Mapping[ReasonCode, str] | None = None) -> dict[str, Any]:
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
            out["problem"] = self.problem.text(hints)
            out["problem_code"] = self.problem.code.value
        if self.capped_gap_ns is not None:
            out["recorded_gap_ms"] = round(self.capped_gap_ns / 1e6, 3)
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
        max_gap: seconds; longer recorded gaps were shortened to it.
        capped: the steps whose gap before them was shortened, in order.
    """

    steps: list[Step]
    left_out: list[tuple[Span, Reason]]
    filtered: int
    commands: bool
    all_commands: bool
    max_gap: float | None = DEFAULT_MAX_GAP
    capped: list[Step] = field(default_factory=list)

    @property
    def events(self) -> list[Step]:
        """The event steps."""
        return [s for s in self.steps if s.kind == "event"]

    def gap_warning(self, hint: str = "") -> str | None:
        """One line naming the shortened gaps (``None`` if none was); ``hint`` ends it."""
        if not self.capped or self.max_gap is None:
            return None
        count = len(self.capped)
        shown = ", ".join(
            f"before #{s.index} ({_gap_text((s.capped_gap_ns or 0) / 1e9)})"
            for s in self.capped[:3]
        )
        more = f" and {count - 3} more" if count > 3 else ""
        return (
            f"{count} recorded gap{'s' if count != 1 else ''} longer than "
            f"{_gap_text(self.max_gap)} {'are' if count != 1 else 'is'} replayed as "
            f"{_gap_text(self.max_gap)}: {shown}{more}" + (f" ({hint})" if hint else "")
        )


def _gap_text(seconds: float) -> str:
    """A gap as a person says it: ``12 s``, ``3.5 h``, ``31 years``."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.3g} {unit}"
    return f"{seconds:.3g} s"


def _step_of(span: Span, kind: Literal["event", "command"]) -> Step:
    args = span.json("bus.args")
    kwargs = span.json("bus.kwargs") if "bus.kwargs" in span.attributes else {}
    problem = None
    if args is NOT_JSON or kwargs is NOT_JSON:
        key = "bus.args" if args is NOT_JSON else "bus.kwargs"
        if span.attributes.get(key + ".truncated"):
            problem = Reason(ReasonCode.ARGS_TRUNCATED)
        elif span.attributes.get(key + ".lossy"):
            problem = Reason(ReasonCode.ARGS_NOT_JSON)
        else:
            problem = Reason(ReasonCode.ARGS_MISSING)
    elif not isinstance(args, list) or not isinstance(kwargs, dict):
        problem = Reason(ReasonCode.ARGS_SHAPE)
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
    max_gap: float | None = DEFAULT_MAX_GAP,
) -> ReplayPlan:
    """Choose what to send: the outermost recorded events (and commands).

    Linear in the spans, and iterative (a causal chain may be thousands of
    spans deep).

    Args:
        only: name patterns; only matching events and commands are sent.
        exclude: name patterns never sent.
        commands: re-execute commands too (read-only ones, see ``all_commands``).
        all_commands: re-execute commands that are not declared read-only.
        readonly: tells whether a command is read-only on the target bus
            (``None``: unknown, e.g. for a dry run without a bus; such
            commands are planned and checked when sent).
        max_gap: seconds; a longer recorded gap between two steps is
            shortened to it and listed in ``capped`` (``None``: keep every
            gap as recorded).
    """
    if max_gap is not None and not max_gap >= 0:  # NaN fails this too
        raise ValueError(f"max_gap must be 0 or more seconds, not {max_gap!r}")
    all_commands = all_commands and commands
    steps: list[Step] = []
    left_out: list[tuple[Span, Reason]] = []
    filtered = 0

    def wanted(name: str) -> bool:
        return not ((only and not _matches(name, only)) or _matches(name, exclude))

    for trace in trace_file.traces():
        pending = list(reversed(trace.roots))
        while pending:
            span = pending.pop()
            if span.kind == "producer":
                if wanted(span.operation):
                    steps.append(_step_of(span, "event"))
                else:
                    filtered += 1
                continue
            if span.kind == "client":
                name = span.operation
                reason = None
                if not commands:
                    reason = Reason(ReasonCode.COMMANDS_OFF)
                elif not wanted(name):
                    reason = Reason(ReasonCode.FILTERED)
                elif not all_commands and readonly is not None and readonly(name) is False:
                    reason = Reason(ReasonCode.NOT_READONLY)
                if reason is None:
                    steps.append(_step_of(span, "command"))
                    continue
                if wanted(name):
                    left_out.append((span, reason))
                else:
                    filtered += 1
            # Looked into: what it caused is replayed in its place.
            pending.extend(reversed(span.children))
    steps.sort(key=lambda s: (s.span.start_ns, s.span.line))
    plan = ReplayPlan(steps, left_out, filtered, commands, all_commands, max_gap)
    _schedule(plan)
    return plan


def _schedule(plan: ReplayPlan) -> None:
    """Number the steps and set their offsets from the first, shortening long gaps."""
    limit = None if plan.max_gap is None else int(plan.max_gap * 1e9)
    previous_start: int | None = None
    offset = 0
    for number, step in enumerate(plan.steps, 1):
        step.index = number
        start = step.span.start_ns
        if previous_start is not None:
            gap = start - previous_start
            if limit is not None and gap > limit:
                step.capped_gap_ns = gap
                plan.capped.append(step)
                gap = limit
            offset += gap
        previous_start = start
        step.offset_ns = offset
