"""Traffic that leaves every kind of mark on its spans, for the span makers' tests.

    shop = start(bus)       # the services
    traffic(bus, shop)      # calls, failures, annotations, links, events, replay

Commands that return, fail, nest (a call and an event from a handler), get
cancelled in the queue, carry values JSON cannot hold or that are cut;
listeners that fail or annotate, an event two services hear, one no one
hears, and work done under a replay mark.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry import trace

from bus import Bus, Service, command, listener
from bus.replay import replaying
from bus.testing import wait_idle

__all__ = ["Opaque", "Other", "Shop", "start", "traffic"]


class Opaque:
    """A value JSON cannot hold (recorded as its repr, marked lossy)."""

    def __repr__(self) -> str:
        return "<opaque>"


class Shop(Service):
    """Commands and listeners that leave every kind of mark on their spans."""

    name = "shop"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    @command("ok")
    def ok(self, value: Any, *, label: str = "x") -> dict[str, Any]:
        return {"value": value, "label": label}

    @command("fails")
    def fails(self) -> None:
        raise ValueError("nope")

    @command("nested")
    def nested(self) -> int:
        self.bus.fire_event("thing.inner", 1)
        return int(self.bus.execute_command("other.ok").result(timeout=5))

    @command("annotated")
    def annotated(self) -> int:
        span = trace.get_current_span()
        span.set_attribute("user.note", "hello")
        span.set_attribute("user.count", 3)
        span.add_event("checkpoint", {"step": 1})
        span.add_event("bare")  # no attributes: left out, as the official exporter does
        span.add_link(span.get_span_context(), {"why": "self"})
        span.add_link(span.get_span_context())
        return 1

    @command("blocks")
    def blocks(self) -> str:
        self.release.wait(10)
        return "done"

    @listener("thing.*")
    def on_thing(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("fail"):
            raise KeyError("bad thing")
        trace.get_current_span().set_attribute("seen", len(args))

    @listener("thing.one")
    def also_on_one(self, *args: Any) -> None:
        """A second listener: two deliveries share their event's context."""


class Other(Service):
    """A second service, for calls between services."""

    name = "other"

    @command("other.ok")
    def other_ok(self) -> int:
        return 7

    @listener("thing.one")
    def on_one(self, *args: Any) -> None:
        """A third delivery of ``thing.one``, on another thread."""


def start(bus: Bus) -> Shop:
    """Add ``Shop`` and ``Other`` to ``bus``; the shop, for ``traffic``."""
    shop = Shop()
    bus.add_service(shop)
    bus.add_service(Other())
    return shop


def traffic(bus: Bus, shop: Shop) -> None:
    """Every kind of call and event, then wait until the bus is idle."""
    bus.execute_command("ok", 1).result(timeout=5)
    bus.execute_command("ok", [1, {"a": None}], label="y" * 10).result(timeout=5)
    bus.execute_command("ok", Opaque()).result(timeout=5)  # not JSON: lossy
    bus.execute_command("ok", "z" * 10_000).result(timeout=5)  # truncated
    with pytest.raises(ValueError, match="nope"):
        bus.execute_command("fails").result(timeout=5)
    bus.execute_command("nested").result(timeout=5)
    bus.execute_command("annotated").result(timeout=5)
    blocked = bus.execute_command("blocks")
    cancelled = bus.execute_command("ok", 0)  # queued behind the blocked one
    assert cancelled.cancel()
    shop.release.set()
    blocked.result(timeout=5)
    bus.fire_event("thing.one", 1, 2.5)
    bus.fire_event("thing.two", fail=True, password="secret")
    bus.fire_event("nobody.listens")
    with replaying("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"):
        bus.fire_event("thing.replayed")
        bus.execute_command("ok", "again").result(timeout=5)
    wait_idle(bus)
