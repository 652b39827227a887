"""Automation: the rules of the house, written as calls to other services.

    from bus import Bus
    from sample_services import start

    with Bus(name="demo") as bus:
        start(bus)
        bus.fire_event("motion.detected", room="hall")  # hall light on, then a push message
        print(bus.execute_command("automation.evening_scene").result(timeout=5))

The rules show the bus's nested calls: a listener (or a command) on the
automation's thread sends commands to other services and waits on their
futures, and each of those calls is a child span of the handler that made it.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, TypedDict

from bus import Service, command, current_event, listener

from .lights import LightState
from .thermostat import SensorError, ZoneState

__all__ = ["Automation", "AutomationStatus", "SceneSummary"]

log = logging.getLogger(__name__)


class SceneSummary(TypedDict):
    """What ``automation.evening_scene`` returns."""

    lights: list[LightState]
    thermostat: ZoneState
    notification: str


class AutomationStatus(TypedDict):
    """What ``automation.status`` returns."""

    motions: int
    ignored_motions: int
    sensor_reads: int
    sensor_failures: int
    readings: dict[str, float]
    scenes: int
    changes: dict[str, int]
    recent_changes: list[str]


class Automation(Service):
    """Reacts to motion, watches the temperature and runs scenes.

    Args:
        motion_brightness: how bright motion turns a room's light on.
        sensor_every: read the sensors on every this many ``clock.tick``.
        zones: the thermostat zones to read.
        timeout: seconds to wait for each command this service sends.
    """

    name = "automation"

    def __init__(
        self,
        *,
        motion_brightness: int = 80,
        sensor_every: int = 2,
        zones: Iterable[str] = ("living_room",),
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        if sensor_every < 1:
            raise ValueError(f"sensor_every must be at least 1, not {sensor_every}")
        self.motion_brightness = motion_brightness
        self.sensor_every = sensor_every
        self.zones = tuple(zones)
        self.timeout = timeout
        self._motions = self._ignored = self._reads = self._failures = self._scenes = 0
        self._readings: dict[str, float] = {}
        self._changes: Counter[str] = Counter()
        self._recent: deque[str] = deque(maxlen=20)

    @listener("motion.detected")
    def on_motion(self, room: str) -> None:
        """Light the room where motion was seen, then tell the household."""
        try:
            light: LightState = self._call(
                "lights.turn_on", room, brightness=self.motion_brightness
            )
        except ValueError as exc:  # a room with no light: nothing to do
            self._ignored += 1
            log.warning("motion ignored: %s", exc)
            return
        self._call("notifier.send", f"Motion in {room}: light on at {light['brightness']}%")
        self._motions += 1

    @listener("clock.tick")
    def on_tick(self, count: int, timestamp: float) -> None:
        """Every ``sensor_every`` ticks, read the temperature of each zone."""
        if count % self.sensor_every:
            return
        for zone in self.zones:
            self._reads += 1
            try:
                self._readings[zone] = self._call("thermostat.read_sensor", zone)
            except SensorError as exc:  # transient: the next tick reads again
                self._failures += 1
                log.info("sensor read failed: %s", exc)

    @listener("*.changed")
    def on_changed(self, *args: Any, **kwargs: Any) -> None:
        """Count state changes of every service, by event name."""
        event = current_event()
        if event is not None:
            self._changes[event.name] += 1
            self._recent.append(event.name)

    @command("automation.evening_scene")
    def evening_scene(self) -> SceneSummary:
        """Dim the living room, light the hall, darken the kitchen, warm up, and say so."""
        send = self.bus.execute_command
        # Send every command first and wait afterwards: the services work in parallel.
        lights: list[Future[Any]] = [
            send("lights.turn_on", "living_room", brightness=40),
            send("lights.turn_on", "hall", brightness=70),
            send("lights.turn_off", "kitchen"),
        ]
        heating = send("thermostat.set_target", "living_room", 21.5)
        summary = SceneSummary(
            lights=[f.result(timeout=self.timeout) for f in lights],
            thermostat=heating.result(timeout=self.timeout),
            notification=self._call("notifier.send", "Evening scene is on", channel="push"),
        )
        self._scenes += 1
        return summary

    @command("automation.status", readonly=True)
    def status(self) -> AutomationStatus:
        """What the rules have done so far: motions handled, sensor reads, changes seen."""
        return AutomationStatus(
            motions=self._motions,
            ignored_motions=self._ignored,
            sensor_reads=self._reads,
            sensor_failures=self._failures,
            readings=dict(self._readings),
            scenes=self._scenes,
            changes=dict(self._changes),
            recent_changes=list(self._recent),
        )

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.bus.execute_command(name, *args, **kwargs).result(timeout=self.timeout)
