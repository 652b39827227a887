"""Replay: send a plan onto a bus at the recorded pace, and report what changed.

    from busctl.traces import BusTarget, Replayer, plan_replay, read_trace_file

    plan = plan_replay(read_trace_file("traces/sample.jsonl"), commands=True)
    report = Replayer(plan, BusTarget(bus), fast=True).run()
    print(report.render())          # differences, and everything left out

What goes into the plan, and what is left out, is ``_plan``'s business; this
module sends it and compares what comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..render.text import clipped, visible
from ._model import Span
from ._plan import (
    DEFAULT_MAX_GAP,
    Outcome,
    Reason,
    ReasonCode,
    ReplayPlan,
    Step,
    plan_replay,
)
from ._targets import BusTarget, ClientTarget, Target

__all__ = [
    "DEFAULT_MAX_GAP",
    "BusTarget",
    "ClientTarget",
    "Difference",
    "Outcome",
    "Reason",
    "ReasonCode",
    "ReplayPlan",
    "ReplayReport",
    "Replayer",
    "Step",
    "Target",
    "plan_replay",
]

Hints = Mapping[ReasonCode, str]

# The longest single wait: Condition.wait refuses more than threading.TIMEOUT_MAX,
# and a stop, a pause or a new speed wakes the wait anyway.
_LONGEST_WAIT = 3600.0


def _shown(text: str) -> str:
    # Results and reasons hold text from the bus or the file: one line, visible.
    return clipped(visible(text), 400)


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
        capped: steps whose long recorded gap before them was shortened.
        differences: commands whose outcome differs from the recording.
        not_compared: ``(step, reason)`` commands run but not comparable.
        compared: how many command outcomes were compared.
        filtered: steps removed by ``only``/``exclude``.
        notes: other things worth knowing (unmarked replay, listeners that changed).
        stopped: the replay was stopped before its end.
    """

    sent: list[Step] = field(default_factory=list)
    skipped: list[tuple[Step, Reason]] = field(default_factory=list)
    left_out: list[tuple[Span, Reason]] = field(default_factory=list)
    capped: list[Step] = field(default_factory=list)
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

    def render(self, hints: Hints | None = None) -> str:
        """The report as text: totals, differences, then what was not replayed.

        Args:
            hints: the remedy to add to each kind of reason, in the terms of
                the face showing it (a flag, a key); none by default.

        Names, arguments and results are shown with their control characters
        made visible, and cut when very long.
        """
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
            lines.append(f"  DIFFERS  #{step.index} {step.shown()}  (line {step.span.line})")
            lines.append(f"    recorded {_shown(diff.recorded.describe())}")
            lines.append(f"    now      {_shown(diff.now.describe())}")
        for step, why in self.not_compared:
            lines.append(f"  not compared  #{step.index} {step.shown()}: {why}")
        if self.skipped:
            lines.append(f"not replayed ({len(self.skipped)}):")
            for step, reason in self.skipped:
                where = f"(line {step.span.line})"
                lines.append(
                    f"  #{step.index} {step.kind} {step.shown()} {where}: "
                    f"{_shown(reason.text(hints))}"
                )
        if self.left_out:
            lines.append(f"commands left out ({len(self.left_out)}):")
            grouped: dict[tuple[str, Reason], int] = {}
            for span, reason in self.left_out:
                key = (span.operation, reason)
                grouped[key] = grouped.get(key, 0) + 1
            for (name, reason), count in grouped.items():
                lines.append(f"  {_shown(name)} x{count}: {_shown(reason.text(hints))}")
        if self.filtered:
            lines.append(f"{self.filtered} {Reason(ReasonCode.FILTERED).text(hints)}")
        lines.extend(_shown(note) for note in self.notes)
        return "\n".join(lines)

    def to_json(self, hints: Hints | None = None) -> dict[str, Any]:
        """JSON-ready form (``--json``); each reason with its ``code``."""
        return {
            "ok": self.ok,
            "sent": len(self.sent),
            "events": sum(1 for s in self.sent if s.kind == "event"),
            "commands": sum(1 for s in self.sent if s.kind == "command"),
            "compared": self.compared,
            "differences": [d.to_json() for d in self.differences],
            "not_compared": [{**s.to_json(hints), "reason": r} for s, r in self.not_compared],
            "skipped": [{**s.to_json(hints), **r.to_json(hints)} for s, r in self.skipped],
            "left_out": [
                {
                    "name": s.operation,
                    "trace_id": s.trace_id,
                    "span_id": s.span_id,
                    "line": s.line,
                    **r.to_json(hints),
                }
                for s, r in self.left_out
            ],
            "capped_gaps": [s.to_json(hints) for s in self.capped],
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
                self._cond.wait(min(remaining, _LONGEST_WAIT))

    def run(self) -> ReplayReport:
        """Send every step in order; return the report."""
        plan = self.plan
        report = ReplayReport(
            left_out=list(plan.left_out), filtered=plan.filtered, capped=list(plan.capped)
        )
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
                report.skipped.append((step, Reason(ReasonCode.SKIPPED)))
                continue
            problem = step.problem
            if problem is None and step.kind == "command" and known is not None:
                if step.name not in known:
                    problem = Reason(ReasonCode.NO_SUCH_COMMAND)
                elif not plan.all_commands and not known[step.name]:
                    problem = Reason(ReasonCode.NOT_READONLY)
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
        warning = plan.gap_warning()
        if warning is not None:
            report.notes.append(f"note: {warning}")
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
                report.skipped.append((step, Reason(ReasonCode.REFUSED, str(exc))))
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
