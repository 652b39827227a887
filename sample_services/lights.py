"""Lights: one dimmable light per room, switched by commands.

    from bus import Bus
    from sample_services import Lights

    with Bus(name="demo") as bus:
        bus.add_service(Lights())
        bus.execute_command("lights.turn_on", "kitchen", brightness=60).result(timeout=2)
        print(bus.execute_command("lights.get", "kitchen").result(timeout=2))
        # {'room': 'kitchen', 'on': True, 'brightness': 60}

Every change fires ``lights.changed`` with the keyword arguments ``room``,
``on`` and ``brightness``, the fields of its declared payload type
``LightsChanged`` (a dataclass): the console's ``busctl emit lights.changed
room=hall on=yes`` is refused, naming the missing ``brightness``. A command
that changes nothing fires nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from bus import Service, command, event_type

__all__ = ["DEFAULT_ROOMS", "LightState", "Lights", "LightsChanged"]

DEFAULT_ROOMS: tuple[str, ...] = ("bathroom", "bedroom", "hall", "kitchen", "living_room")
"""The rooms a ``Lights()`` service has unless told otherwise."""


class LightState(TypedDict):
    """The state of one room's light, as the commands return it."""

    room: str
    on: bool
    brightness: int


@event_type("lights.changed")
@dataclass(frozen=True)
class LightsChanged:
    """The payload of ``lights.changed``: its keyword arguments.

    Attributes:
        room: the room whose light changed.
        on: whether it is on now.
        brightness: its brightness now, in percent.
    """

    room: str
    on: bool
    brightness: int


class Lights(Service):
    """A light per room: on or off, with a brightness from 0 to 100 percent.

    Args:
        rooms: the rooms that have a light; every light starts off.
    """

    name = "lights"
    events = (LightsChanged,)

    def __init__(self, rooms: Iterable[str] = DEFAULT_ROOMS) -> None:
        super().__init__()
        self._lights: dict[str, LightState] = {
            room: {"room": room, "on": False, "brightness": 0} for room in rooms
        }
        if not self._lights:
            raise ValueError("Lights needs at least one room")

    @command("lights.turn_on")
    def turn_on(self, room: str, brightness: int = 100) -> LightState:
        """Turn the light in ``room`` on at ``brightness`` percent (0 to 100).

        Raises:
            ValueError: the room is unknown or the brightness is out of range.
            TypeError: the brightness is not an integer.
        """
        self._check_room(room)
        if isinstance(brightness, bool) or not isinstance(brightness, int):
            raise TypeError(f"brightness must be an int, not {type(brightness).__name__}")
        if not 0 <= brightness <= 100:
            raise ValueError(f"brightness must be between 0 and 100, not {brightness}")
        return self._set(room, True, brightness)

    @command("lights.turn_off")
    def turn_off(self, room: str) -> LightState:
        """Turn the light in ``room`` off.

        Raises:
            ValueError: the room is unknown.
        """
        self._check_room(room)
        return self._set(room, False, 0)

    @command("lights.get", readonly=True)
    def get(self, room: str) -> LightState:
        """The state of the light in ``room``.

        Raises:
            ValueError: the room is unknown.
        """
        self._check_room(room)
        return LightState(**self._lights[room])

    @command("lights.list", readonly=True)
    def list_lights(self) -> list[LightState]:
        """The state of every light, by room name."""
        return [LightState(**self._lights[room]) for room in sorted(self._lights)]

    def _check_room(self, room: str) -> None:
        if not isinstance(room, str):
            raise TypeError(f"room must be a str, not {type(room).__name__}")
        if room not in self._lights:
            known = ", ".join(sorted(self._lights))
            raise ValueError(f"unknown room {room!r}; known rooms: {known}")

    def _set(self, room: str, on: bool, brightness: int) -> LightState:
        state = LightState(room=room, on=on, brightness=brightness)
        if state != self._lights[room]:
            self._lights[room] = state
            self.bus.fire_event("lights.changed", room=room, on=on, brightness=brightness)
        return LightState(**state)
