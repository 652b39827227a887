"""``busctl replay FILE --to-pytest OUT.py``: a recording as a regression test.

    from busctl.traces import plan_replay, read_trace_file, write_pytest

    plan = plan_replay(read_trace_file("traces/sample.jsonl"), commands=True)
    write_pytest(plan, "tests/test_recorded.py", services=["sample_services"])

The test starts the services on a fresh bus, sends the planned steps in their
recorded order (each once the bus is idle again, so the outcome does not
depend on timing), and asserts that each command returns or raises what it
did when recorded and that the same events reach the same listeners.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..render.text import visible
from ._model import NOT_JSON
from ._replay import ReplayPlan, Step

__all__ = ["render_pytest", "write_pytest"]

_TEMPLATE = '''\
"""Regression test: a replay of a recorded trace, with its recorded outcomes.

Recorded from {source} by `busctl replay --to-pytest` ({date}).
It starts the services ({services}) on a fresh bus, replays the recorded
traffic in order, one step once the bus is idle again, and asserts that every
command returns (or raises) what it did when recorded and that the same events
reach the same listeners. When a change of behaviour is intended, record a new
trace and regenerate this file.
{left_out}"""

from __future__ import annotations

import importlib
import json
import threading
from collections import Counter

import pytest

from bus import Bus
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(120)

SERVICES = {services_list!r}
OPTIONS = json.loads({options!r})
STEPS = json.loads({steps!r})
DELIVERIES = json.loads({deliveries!r})


def start_services(bus):
    """Start each of SERVICES: a module's start(bus, **OPTIONS), or module:Class()."""
    for target in SERVICES:
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        if attribute:
            bus.add_service(getattr(module, attribute)())
        else:
            module.start(bus, **OPTIONS.get(target, {{}}))


def as_json(value):
    return json.loads(json.dumps(value))


def outcome_of(bus, step):
    try:
        future = bus.execute_command(step["name"], *step["args"], **step["kwargs"])
        return {{"result": as_json(future.result(timeout=30))}}
    except Exception as exc:
        return {{"error": {{"type": type(exc).__qualname__, "message": str(exc)}}}}


@pytest.fixture
def bus():
    with Bus(name="recorded", nats="") as bus:  # in this process, whatever BUS_NATS_URL says
        start_services(bus)
        yield bus


def test_replay_matches_recording(bus):
    lock = threading.Lock()
    seen = Counter()

    def watch(activity):
        if activity.kind == "delivery":
            with lock:
                seen[(activity.name, activity.service, activity.pattern)] += 1

    bus.watch(watch)
    differences = []
    for step in STEPS:
        if step["kind"] == "event":
            bus.fire_event(step["name"], *step["args"], **step["kwargs"])
        else:
            now = outcome_of(bus, step)
            if "recorded" in step and now != step["recorded"]:
                differences.append((step["call"], step["recorded"], now))
        wait_idle(bus)
    assert differences == []
    with lock:
        delivered = dict(seen)
    assert delivered == {{tuple(key): count for *key, count in DELIVERIES}}
'''


def _expected_deliveries(steps: list[Step]) -> list[list[Any]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for step in steps:
        for span in [step.span, *step.span.descendants()]:
            if span.kind == "consumer":
                pattern = str(span.attributes.get("bus.listener.pattern", "?"))
                counts[(span.event or span.name, span.service, pattern)] += 1
    return [[*key, count] for key, count in sorted(counts.items())]


def render_pytest(
    plan: ReplayPlan,
    *,
    source: str,
    services: list[str],
    options: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The test module's source for ``plan`` (see ``write_pytest``)."""
    steps = [s for s in plan.steps if s.problem is None]
    encoded = []
    notes = []
    for step in plan.steps:
        if step.problem is not None:
            notes.append(f"#{step.index} {step.kind} {step.call_text()}: {step.problem}")
    for step in steps:
        item: dict[str, Any] = {
            "kind": step.kind,
            "name": step.name,
            "args": step.args,
            "kwargs": step.kwargs,
            "call": step.call_text(),
        }
        recorded = step.recorded
        if step.kind == "command":
            if recorded is None or not recorded.comparable:
                notes.append(f"#{step.index} {step.call_text()}: run, result not compared")
            else:
                item["recorded"] = recorded.to_json()
                if recorded.ok and recorded.value is NOT_JSON:  # pragma: no cover - guarded
                    del item["recorded"]
        encoded.append(item)
    for span, reason in plan.left_out:
        notes.append(f"{span.operation} (line {span.line}): {reason}")
    left_out = ""
    if notes:
        body = "\n".join(f"- {_doc(n)}" for n in notes)
        left_out = "\nNot replayed or not compared:\n\n" + textwrap.indent(body, "") + "\n"
    return _TEMPLATE.format(
        source=_doc(source),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        services=_doc(", ".join(services)),
        services_list=services,
        options=json.dumps(options or {}),
        steps=json.dumps(encoded, ensure_ascii=False),
        deliveries=json.dumps(_expected_deliveries(steps), ensure_ascii=False),
        left_out=left_out,
    )


def _doc(text: str) -> str:
    """Text from the trace file, safe inside the test's docstring.

    Control characters made visible (a NUL would make the file unreadable
    to Python), backslashes doubled (``\\N`` would not compile) and no
    triple quote to end the docstring early.
    """
    return visible(text).replace("\\", "\\\\").replace('"""', "'''")


def write_pytest(
    plan: ReplayPlan,
    out: str | os.PathLike[str],
    *,
    services: list[str],
    source: str = "a trace file",
    options: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write the regression test for ``plan`` to ``out``; return its path.

    Args:
        services: what to start, as for ``busctl run``: a module with a
            ``start(bus, **options)`` function, or ``module:Class``.
        options: keyword arguments for a module's ``start``, by target.
    """
    path = Path(out)
    path.write_text(
        render_pytest(plan, source=source, services=services, options=options), encoding="utf-8"
    )
    return path
