"""Replay: re-fire recorded events (and, opt-in, re-execute commands) onto a bus.

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

import contextlib
import fnmatch
import importlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ._file import TraceFile
from ._model import NOT_JSON, Span

if TYPE_CHECKING:
    from bus import Bus
    from busctl._client import Client

__all__ = [
    "BusTarget",
    "ClientTarget",
    "Difference",
    "Outcome",
    "ReplayPlan",
    "ReplayReport",
    "Replayer",
    "Step",
    "plan_replay",
]


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


# -- targets ---------------------------------------------------------------------------


class Target(Protocol):
    """Where a replay sends its traffic."""

    marks: bool | None
    """Whether replayed spans are marked and linked (``None``: not known yet)."""

    def commands(self) -> dict[str, bool]:
        """Command name -> declared read-only."""

    def fire(self, step: Step) -> int:
        """Fire the step's event; return how many listeners match."""

    def execute(self, step: Step, timeout: float) -> Outcome:
        """Execute the step's command and wait for its outcome."""

    def settle(self, timeout: float) -> bool:
        """Wait until the bus is idle (no queued work, no handler running)."""


def _replay_of(step: Step) -> dict[str, str]:
    return {"trace_id": step.span.trace_id, "span_id": step.span.span_id}


def _as_json(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return NOT_JSON


class ClientTarget:
    """A bus reached through the control protocol (``busctl._client.Client``)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.marks: bool | None = None

    def commands(self) -> dict[str, bool]:
        """Command name -> declared read-only, from the bus's ``inspect``."""
        return {c["name"]: bool(c.get("readonly")) for c in self.client.inspect()["commands"]}

    def _request(
        self, method: str, params: dict[str, Any], step: Step, timeout: float | None
    ) -> Any:
        from busctl._client import RemoteError

        if self.marks is not False:
            try:
                result = self.client.request(
                    method, {**params, "replay_of": _replay_of(step)}, timeout=timeout
                )
            except RemoteError as exc:
                if exc.code == -32602 and exc.data.get("param") == "replay_of":
                    self.marks = False  # an older bus: replay unmarked, and say so
                else:
                    raise
            else:
                if self.marks is None:
                    self.marks = True
                return result
        return self.client.request(method, params, timeout=timeout)

    def settle(self, timeout: float) -> bool:
        """Wait until every service is idle with an empty mailbox; ``False`` on timeout.

        Uses the server's ``wait_idle`` method when it has one, else polls
        ``inspect``.
        """
        methods = self.client.info.get("methods", ()) if hasattr(self.client, "info") else ()
        if "wait_idle" in methods:
            result = self.client.request("wait_idle", {"timeout": timeout}, timeout=timeout + 5)
            return bool(result.get("idle", True)) if isinstance(result, dict) else True
        deadline = time.monotonic() + timeout
        delay = 0.001
        quiet = 0
        while time.monotonic() < deadline:
            services = self.client.inspect().get("services", [])
            busy = any(
                s.get("mailbox") or s.get("activity") not in (None, "idle") for s in services
            )
            quiet = 0 if busy else quiet + 1
            if quiet >= 2:  # twice in a row: nothing was in flight between two looks
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return False

    def fire(self, step: Step) -> int:
        """Fire the event through the control endpoint."""
        params = {"name": step.name, "args": step.args, "kwargs": step.kwargs}
        result = self._request("fire", params, step, None)
        return int(result.get("listeners", 0)) if isinstance(result, dict) else 0

    def execute(self, step: Step, timeout: float) -> Outcome:
        """Execute the command through the control endpoint and wait for it."""
        from busctl._client import RemoteError

        params = {"name": step.name, "args": step.args, "kwargs": step.kwargs, "timeout": timeout}
        try:
            result = self._request("execute", params, step, timeout + 5)
        except RemoteError as exc:
            return Outcome(False, error_type=exc.type or f"RemoteError {exc.code}",
                           error_message=str(exc.data.get("message", exc.message)))  # fmt: skip
        if isinstance(result, dict):
            if result.get("lossy"):
                return Outcome(True, NOT_JSON)
            return Outcome(True, result.get("result"))
        return Outcome(True, result)


def _bus_replaying(step: Step) -> contextlib.AbstractContextManager[Any] | None:
    # The bus-side seam (see docs/traces.md): a context manager under which
    # the bus marks the spans it starts as replayed and links them to the
    # recorded span. Older buses lack it; the replay then runs unmarked.
    module = importlib.import_module("bus._context")
    hook = getattr(module, "replaying", None)
    if hook is None:
        return None
    manager: contextlib.AbstractContextManager[Any] = hook(step.span.trace_id, step.span.span_id)
    return manager


class BusTarget:
    """A ``bus.Bus`` in this process."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.marks: bool | None = None
        self._patterns: list[str] | None = None

    def commands(self) -> dict[str, bool]:
        """Command name -> declared read-only, from ``bus.inspect()``."""
        return {c["name"]: bool(c.get("readonly")) for c in self.bus.inspect()["commands"]}

    @contextlib.contextmanager
    def _marked(self, step: Step) -> Iterator[None]:
        manager = _bus_replaying(step)
        self.marks = manager is not None
        if manager is None:
            yield
        else:
            with manager:
                yield

    def settle(self, timeout: float) -> bool:
        """``bus.wait_idle``."""
        return self.bus.wait_idle(timeout)

    def fire(self, step: Step) -> int:
        """Fire the event on the bus."""
        from bus._patterns import pattern_matches

        if self._patterns is None:
            self._patterns = [item["pattern"] for item in self.bus.inspect()["listeners"]]
        with self._marked(step):
            self.bus.fire_event(step.name, *step.args, **step.kwargs)
        return sum(1 for p in self._patterns if pattern_matches(p, step.name))

    def execute(self, step: Step, timeout: float) -> Outcome:
        """Execute the command on the bus and wait for it."""
        try:
            with self._marked(step):
                future = self.bus.execute_command(step.name, *step.args, **step.kwargs)
            value = future.result(timeout=timeout)
        except Exception as exc:  # the outcome is what we compare, whatever it is
            return Outcome(False, error_type=type(exc).__qualname__, error_message=str(exc))
        return Outcome(True, _as_json(value))


# -- the run ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """A command whose outcome now differs from the recording."""

    step: Step
    recorded: Outcome
    now: Outcome

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "index": self.step.index,
            "command": self.step.name,
            "call": self.step.call_text(),
            "line": self.step.span.line,
            "recorded": self.recorded.to_json(),
            "now": self.now.to_json(),
        }


@dataclass(slots=True)
class ReplayReport:
    """What a replay did.

    Attributes:
        sent: steps sent to the bus.
        skipped: ``(step, reason)`` for steps that could not be sent.
        left_out: ``(span, reason)`` from the plan (commands not replayed).
        differences: commands whose outcome differs from the recording.
        not_compared: ``(step, reason)`` commands run but not comparable.
        compared: how many command outcomes were compared.
        filtered: steps removed by ``only``/``exclude``.
        notes: other things worth knowing (unmarked replay, listeners that changed).
        stopped: the replay was stopped before its end.
    """

    sent: list[Step] = field(default_factory=list)
    skipped: list[tuple[Step, str]] = field(default_factory=list)
    left_out: list[tuple[Span, str]] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    not_compared: list[tuple[Step, str]] = field(default_factory=list)
    compared: int = 0
    filtered: int = 0
    notes: list[str] = field(default_factory=list)
    stopped: bool = False

    @property
    def ok(self) -> bool:
        """No differences and nothing that should have been sent was skipped."""
        return not self.differences and not self.skipped

    def render(self) -> str:
        """The report as text: totals, differences, then what was not replayed."""
        events = sum(1 for s in self.sent if s.kind == "event")
        commands = len(self.sent) - events
        lines = [
            f"replayed {events} event{'s' if events != 1 else ''} and "
            f"{commands} command{'s' if commands != 1 else ''}"
            + (" (stopped early)" if self.stopped else "")
        ]
        if commands or self.differences:
            lines.append(
                f"compared {self.compared} command result{'s' if self.compared != 1 else ''}: "
                + (f"{len(self.differences)} differ" if self.differences else "all as recorded")
            )
        for diff in self.differences:
            step = diff.step
            lines.append(f"  DIFFERS  #{step.index} {step.call_text()}  (line {step.span.line})")
            lines.append(f"    recorded {diff.recorded.describe()}")
            lines.append(f"    now      {diff.now.describe()}")
        for step, reason in self.not_compared:
            lines.append(f"  not compared  #{step.index} {step.call_text()}: {reason}")
        if self.skipped:
            lines.append(f"not replayed ({len(self.skipped)}):")
            for step, reason in self.skipped:
                where = f"(line {step.span.line})"
                lines.append(f"  #{step.index} {step.kind} {step.call_text()} {where}: {reason}")
        if self.left_out:
            lines.append(f"commands left out ({len(self.left_out)}):")
            grouped: dict[tuple[str, str], int] = {}
            for span, reason in self.left_out:
                key = (span.operation, reason)
                grouped[key] = grouped.get(key, 0) + 1
            for (name, reason), count in grouped.items():
                lines.append(f"  {name} x{count}: {reason}")
        if self.filtered:
            lines.append(f"{self.filtered} left out by --only/--exclude")
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "ok": self.ok,
            "sent": len(self.sent),
            "events": sum(1 for s in self.sent if s.kind == "event"),
            "commands": sum(1 for s in self.sent if s.kind == "command"),
            "compared": self.compared,
            "differences": [d.to_json() for d in self.differences],
            "not_compared": [{**s.to_json(), "reason": r} for s, r in self.not_compared],
            "skipped": [{**s.to_json(), "reason": r} for s, r in self.skipped],
            "left_out": [
                {
                    "name": s.operation,
                    "trace_id": s.trace_id,
                    "span_id": s.span_id,
                    "line": s.line,
                    "reason": r,
                }
                for s, r in self.left_out
            ],
            "filtered": self.filtered,
            "notes": self.notes,
            "stopped": self.stopped,
        }


class Replayer:
    """Sends a plan's steps to a target at the recorded pace, with controls.

    ``run()`` works on the calling thread; ``pause``, ``resume``, ``step``,
    ``set_speed`` and ``stop`` may be called from any other thread (the TUI's
    buttons) while it runs.

    Args:
        speed: recorded gaps are divided by it (2.0: twice as fast).
        fast: send each step as soon as the previous one is done.
        paused: start paused (each ``step()`` sends one).
        before_step: called with each step before it is sent (``--step``
            waits for Enter there); returning ``False`` skips the step.
        on_step: called with each step and its outcome (``None`` for events)
            after it was sent.
        timeout: seconds a replayed command may take.
        settle: before each command, wait until the bus is idle, so the
            command sees the state the events before it produced (the
            recorded pace gives them that time; ``fast`` does not). Default:
            on with ``fast``.
    """

    def __init__(
        self,
        plan: ReplayPlan,
        target: Target,
        *,
        speed: float = 1.0,
        fast: bool = False,
        paused: bool = False,
        before_step: Callable[[Step], bool] | None = None,
        on_step: Callable[[Step, Outcome | None], None] | None = None,
        timeout: float = 30.0,
        settle: bool | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be more than 0")
        self.plan = plan
        self.target = target
        self.speed = speed
        self.fast = fast
        self.before_step = before_step
        self.on_step = on_step
        self.timeout = timeout
        self.settle = settle
        self.position = 0
        self._cond = threading.Condition()
        self._paused = paused
        self._tokens = 0
        self._stopped = False

    # -- controls (any thread) -------------------------------------------------

    def pause(self) -> None:
        """Stop before the next step until ``resume`` or ``step``."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        """Play on at the recorded pace."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def step(self) -> None:
        """While paused, send the next step now."""
        with self._cond:
            self._tokens += 1
            self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        """Change the pace factor; takes effect at once."""
        if speed <= 0:
            raise ValueError("speed must be more than 0")
        with self._cond:
            self.speed = speed
            self._cond.notify_all()

    def stop(self) -> None:
        """End the run before the next step."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        """Whether it waits for ``resume`` or ``step``."""
        return self._paused

    # -- the run (one thread) --------------------------------------------------

    def _wait_turn(self, gap_ns: int, last_sent: float) -> bool:
        """Wait until the next step is due; ``False`` when stopped."""
        with self._cond:
            while True:
                if self._stopped:
                    return False
                if self._paused:
                    if self._tokens:
                        self._tokens -= 1
                        return True
                    self._cond.wait()
                    continue
                if self.fast:
                    return True
                remaining = gap_ns / 1e9 / self.speed - (time.monotonic() - last_sent)
                if remaining <= 0:
                    return True
                self._cond.wait(remaining)

    def run(self) -> ReplayReport:
        """Send every step in order; return the report."""
        plan = self.plan
        report = ReplayReport(left_out=list(plan.left_out), filtered=plan.filtered)
        known: dict[str, bool] | None = None
        if any(s.kind == "command" for s in plan.steps):
            known = self.target.commands()
        previous_offset = 0
        last_sent = time.monotonic()
        for step in plan.steps:
            if not self._wait_turn(step.offset_ns - previous_offset, last_sent):
                self._stopped_at(step, report)
                break
            previous_offset = step.offset_ns
            last_sent = time.monotonic()
            self.position = step.index
            if self.before_step is not None and not self.before_step(step):
                if self._stopped:
                    self._stopped_at(step, report)
                    break
                report.skipped.append((step, "skipped at the --step prompt"))
                continue
            problem = step.problem
            if problem is None and step.kind == "command" and known is not None:
                if step.name not in known:
                    problem = "the command no longer exists on this bus"
                elif not plan.all_commands and not known[step.name]:
                    problem = "not declared read-only (use --all-commands to re-execute it)"
            if problem is not None:
                report.skipped.append((step, problem))
                continue
            settle = self.fast if self.settle is None else self.settle
            if settle and step.kind == "command" and not self.target.settle(self.timeout):
                report.notes.append(
                    f"note: the bus was still busy after {self.timeout:g}s before #{step.index}"
                )
            outcome = self._send(step, report)
            if self.on_step is not None:
                self.on_step(step, outcome)
        if self.target.marks is False:
            report.notes.append(
                "note: this bus has no replay hook, so replayed spans are not marked "
                "as replayed nor linked to the recording"
            )
        return report

    def _stopped_at(self, step: Step, report: ReplayReport) -> None:
        report.stopped = True
        left = len(self.plan.steps) - step.index + 1
        report.notes.append(
            f"stopped before #{step.index}: {left} step{'s' if left != 1 else ''} not sent"
        )

    def _send(self, step: Step, report: ReplayReport) -> Outcome | None:
        if step.kind == "event":
            try:
                listeners = self.target.fire(step)
            except Exception as exc:
                report.skipped.append((step, f"the bus refused it: {exc}"))
                return None
            report.sent.append(step)
            if listeners >= 0 and listeners != len(step.deliveries):
                report.notes.append(
                    f"note: #{step.index} {step.name} reaches {listeners} listener"
                    f"{'s' if listeners != 1 else ''} now, {len(step.deliveries)} when recorded"
                )
            return None
        now = self.target.execute(step, self.timeout)
        report.sent.append(step)
        recorded = step.recorded
        if recorded is None:
            report.not_compared.append((step, "no recorded outcome (its handler span is missing)"))
        elif not recorded.comparable:
            report.not_compared.append((step, "the recorded result was truncated or not JSON"))
        elif not now.comparable:
            report.not_compared.append((step, "the result now is not JSON"))
        else:
            report.compared += 1
            if not recorded.same_as(now):
                report.differences.append(Difference(step, recorded, now))
        return now
