"""A small smart home on the bus: lights, heating, a clock, notifications, rules.

    from bus import Bus
    import sample_services

    with Bus(name="demo") as bus:
        sample_services.start(bus)
        bus.fire_event("motion.detected", room="hall")
        print(bus.execute_command("automation.evening_scene").result(timeout=5))

Run ``python -m sample_services`` to watch them talk. Each service lives in its
own module: ``greeter`` (the classic first example), ``lights``,
``thermostat`` (with a sensor that fails now and then), ``scheduler`` (the
``clock.tick`` timer), ``notifier`` (slow, two messages at a time) and
``automation`` (rules that call the others). ``slow`` (one command that takes
as long as asked, to try Ctrl-C and timeouts on) is not started with them.

``sample_trace()`` is the path of ``sample.jsonl``, a recording of these
services that ships with the package (``busctl trace show --sample``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.resources
from pathlib import Path
from typing import TypedDict, Unpack

from bus import Bus, Service

from .automation import Automation
from .greeter import Greeter
from .lights import Lights
from .notifier import DEFAULT_DELAY, Notifier
from .scheduler import DEFAULT_INTERVAL, Scheduler
from .slow import Slow
from .thermostat import SensorError, Thermostat

__all__ = [
    "Automation",
    "Greeter",
    "Lights",
    "Notifier",
    "Options",
    "Scheduler",
    "SensorError",
    "Slow",
    "Thermostat",
    "all_services",
    "sample_trace",
    "start",
]


class Options(TypedDict, total=False):
    """The knobs of ``all_services`` and ``start``, mostly to make tests fast."""

    tick_interval: float
    first_tick: float | None
    notifier_delay: float
    sensor_failure_rate: float
    sensor_seed: int | None
    sensor_every: int


def all_services(
    *,
    tick_interval: float = DEFAULT_INTERVAL,
    first_tick: float | None = None,
    notifier_delay: float = DEFAULT_DELAY,
    sensor_failure_rate: float = 0.1,
    sensor_seed: int | None = None,
    sensor_every: int = 2,
) -> list[Service]:
    """Fresh instances of every sample service, in dependency order.

    Args:
        tick_interval: seconds between ``clock.tick`` events.
        first_tick: seconds from start to the first tick (default: one interval).
        notifier_delay: seconds the notifier takes to deliver a message.
        sensor_failure_rate: the chance that a thermostat sensor read fails.
        sensor_seed: seeds the sensor failures (``None``: different each run).
        sensor_every: the automation reads the sensors every this many ticks.

    Returns:
        The services that others call come before those that call them, and the
        scheduler, whose ticks set the rules going, comes last.
    """
    return [
        Greeter(),
        Lights(),
        Thermostat(failure_rate=sensor_failure_rate, seed=sensor_seed),
        Notifier(delay=notifier_delay),
        Automation(sensor_every=sensor_every),
        Scheduler(interval=tick_interval, first_tick=first_tick),
    ]


def start(bus: Bus, **options: Unpack[Options]) -> list[Service]:
    """Add every sample service to ``bus``, in dependency order; return them.

    Blocks until each one has started (see ``Bus.add_service``). Takes the
    options of ``all_services``. Call it from any thread but a handler's.
    """
    services = all_services(**options)
    for service in services:
        bus.add_service(service)
    return services


@functools.cache
def sample_trace() -> Path:
    """The path of ``sample.jsonl``: a recorded session of these services.

    It is package data, so it is there for a ``pip install`` as for a
    checkout (where ``traces/sample.jsonl`` links to it). OTLP JSON lines, for
    ``busctl trace show``, ``busctl replay`` and the TUI's replay tab.
    """
    resource = importlib.resources.files(__name__) / "sample.jsonl"
    # A real file as it is; from a zip, a copy that lasts as long as the process.
    return _kept.enter_context(importlib.resources.as_file(resource))


_kept = contextlib.ExitStack()
atexit.register(_kept.close)
