"""Thermostat: a target and a measured temperature per zone, and a flaky sensor.

    from bus import Bus
    from sample_services import Thermostat
    from sample_services.thermostat import SensorError

    with Bus(name="demo") as bus:
        bus.add_service(Thermostat(seed=42))
        bus.execute_command("thermostat.set_target", "office", 21.5).result(timeout=2)
        try:
            print(bus.execute_command("thermostat.read_sensor", "office").result(timeout=2))
        except SensorError as exc:
            print("sensor failed:", exc)

``thermostat.read_sensor`` fails now and then, as real sensors do. Each read
draws once from ``random.Random(seed)`` and fails when the draw is below
``failure_rate``, so a fixed seed gives the same failures every run. A read
that succeeds moves the zone's temperature one ``step`` towards its target
(the heating at work) unless the zone's ``Mode`` is ``off``. Every change
fires ``thermostat.changed`` with the keyword arguments ``zone``, ``target``
and ``current``, the keys of its declared payload type ``ThermostatChanged``.

``thermostat.set_mode`` shows typed values end to end. It takes a ``Mode``,
an enum: the console sends ``"off"`` and the handler gets ``Mode.OFF``, and
``busctl call thermostat.set_mode office warm`` is refused before anything
runs, naming the modes there are. It returns a ``ModeChange`` dataclass,
which the console and the traces show as the JSON it stands for:
``{"zone": "office", "mode": "off", "previous": "heat", "at":
"2026-03-01T12:30:00Z"}``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TypedDict

from bus import Service, command

__all__ = [
    "DEFAULT_ZONES",
    "MAX_CELSIUS",
    "MIN_CELSIUS",
    "Mode",
    "ModeChange",
    "SensorError",
    "Thermostat",
    "ThermostatChanged",
    "ZoneState",
]

DEFAULT_ZONES: tuple[str, ...] = ("bedroom", "living_room", "office")
"""The zones a ``Thermostat()`` has unless told otherwise."""
MIN_CELSIUS = 5.0
"""The lowest target accepted (frost protection)."""
MAX_CELSIUS = 30.0
"""The highest target accepted."""
START_CELSIUS = 18.0
"""Where every zone's target and temperature start."""


class SensorError(Exception):
    """Raised by ``thermostat.read_sensor`` when the zone's sensor does not answer.

    Transient: the next read may well succeed.

    Attributes:
        zone: the zone whose sensor failed.
    """

    def __init__(self, zone: str, message: str) -> None:
        super().__init__(message)
        self.zone = zone

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.zone, str(self)))


class Mode(Enum):
    """What a zone's heating does."""

    HEAT = "heat"
    """Heat towards the target (every zone starts so)."""
    OFF = "off"
    """Do nothing: the temperature stays where it is."""


@dataclass(frozen=True)
class ModeChange:
    """What ``thermostat.set_mode`` returns.

    Attributes:
        zone: the zone whose mode was set.
        mode: its mode now.
        previous: its mode before.
        at: when the mode was set (UTC).
    """

    zone: str
    mode: Mode
    previous: Mode
    at: datetime


class ZoneState(TypedDict):
    """One zone, as the commands return it."""

    zone: str
    target: float
    current: float
    heating: bool


class ThermostatChanged(TypedDict):
    """The payload of ``thermostat.changed``: its keyword arguments."""

    zone: str
    target: float
    current: float


class Thermostat(Service):
    """Target and measured temperatures per zone, read through a flaky sensor.

    Args:
        zones: the zones, each starting at ``START_CELSIUS``.
        failure_rate: the chance (0 to 1) that a sensor read fails.
        seed: seeds the failures; ``None`` for different ones every run.
        step: the most a successful read moves a zone towards its target.
    """

    name = "thermostat"
    events = {"thermostat.changed": ThermostatChanged}

    def __init__(
        self,
        zones: Iterable[str] = DEFAULT_ZONES,
        *,
        failure_rate: float = 0.1,
        seed: int | None = None,
        step: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1, not {failure_rate}")
        self.failure_rate = failure_rate
        self.step = step
        self._random = random.Random(seed)
        self._reads = 0
        self._zones: dict[str, ZoneState] = {
            zone: _state(zone, START_CELSIUS, START_CELSIUS) for zone in zones
        }
        if not self._zones:
            raise ValueError("Thermostat needs at least one zone")
        self._modes = dict.fromkeys(self._zones, Mode.HEAT)

    @command("thermostat.set_target")
    def set_target(self, zone: str, celsius: float) -> ZoneState:
        """Set the temperature ``zone`` should reach, in degrees Celsius.

        Raises:
            ValueError: the zone is unknown or ``celsius`` is outside 5 to 30.
            TypeError: ``celsius`` is not a number.
        """
        state = self._zone(zone)
        if isinstance(celsius, bool) or not isinstance(celsius, int | float):
            raise TypeError(f"celsius must be a number, not {type(celsius).__name__}")
        if not MIN_CELSIUS <= celsius <= MAX_CELSIUS:
            raise ValueError(
                f"target {celsius} °C for {zone!r} is out of range ({MIN_CELSIUS} to {MAX_CELSIUS})"
            )
        return self._update(zone, float(celsius), state["current"])

    @command("thermostat.set_mode")
    def set_mode(self, zone: str, mode: Mode) -> ModeChange:
        """Turn the heating of ``zone`` on (``heat``) or ``off``.

        Raises:
            ValueError: the zone is unknown, or the mode (in process, where
                nothing converted it: ``Mode("warm")`` raises).
        """
        state = self._zone(zone)
        previous, self._modes[zone] = self._modes[zone], Mode(mode)
        self._update(zone, state["target"], state["current"])
        return ModeChange(zone, self._modes[zone], previous, datetime.now(UTC))

    @command("thermostat.get", readonly=True)
    def get(self, zone: str) -> ZoneState:
        """The target and last measured temperature of ``zone``.

        Raises:
            ValueError: the zone is unknown.
        """
        return ZoneState(**self._zone(zone))

    @command("thermostat.read_sensor")
    def read_sensor(self, zone: str) -> float:
        """Measure the temperature of ``zone`` now, in degrees Celsius.

        Raises:
            ValueError: the zone is unknown.
            SensorError: the sensor did not answer (now and then; try again).
        """
        state = self._zone(zone)
        self._reads += 1
        if self._random.random() < self.failure_rate:
            raise SensorError(zone, f"sensor in {zone!r} did not answer (read #{self._reads})")
        target, current = state["target"], state["current"]
        if self._modes[zone] is Mode.OFF:
            return current
        change = max(-self.step, min(self.step, target - current))
        return self._update(zone, target, round(current + change, 2))["current"]

    def _zone(self, zone: str) -> ZoneState:
        if not isinstance(zone, str):
            raise TypeError(f"zone must be a str, not {type(zone).__name__}")
        if zone not in self._zones:
            known = ", ".join(sorted(self._zones))
            raise ValueError(f"unknown zone {zone!r}; known zones: {known}")
        return self._zones[zone]

    def _update(self, zone: str, target: float, current: float) -> ZoneState:
        state = _state(zone, target, current, self._modes[zone])
        if state != self._zones[zone]:
            self._zones[zone] = state
            self.bus.fire_event("thermostat.changed", zone=zone, target=target, current=current)
        return ZoneState(**state)


def _state(zone: str, target: float, current: float, mode: Mode = Mode.HEAT) -> ZoneState:
    heating = mode is Mode.HEAT and current < target
    return ZoneState(zone=zone, target=target, current=current, heating=heating)
