"""Real buses with a control socket for the console's tests (not a test module).

Each bus listens in a fresh private directory under /tmp (Unix socket paths
are limited to ~100 bytes), and is closed and its directory removed when the
``with`` block ends. ``counted_bus`` adds ``Counted`` (and ``Releaser``), and
lets a blocked ``counted.wait_sync`` go before the bus closes.

    with counted_bus("typed", samples=True) as (bus, counted):
        ...
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sample_services
from bus import Bus
from tests.busctl.counted_services import Counted, Releaser

QUIET_SAMPLES: dict[str, Any] = {"tick_interval": 3600, "sensor_failure_rate": 0.0}
"""The sample services with nothing on a timer and no random failures: nothing moves unasked."""


@contextmanager
def control_bus(
    name: str,
    *,
    samples: dict[str, Any] | None = None,
    close_timeout: float = 10.0,
    **options: Any,
) -> Iterator[Bus]:
    """A ``Bus(name=name, **options)`` listening on ``<fresh dir>/<name>.sock``.

    Args:
        name: the bus's name, and its socket's.
        samples: start the sample services with these options (``None``: none).
        close_timeout: how long ``close`` waits for the services on the way out.
        **options: more ``Bus`` options (``span_buffer``...).
    """
    directory = Path(tempfile.mkdtemp(prefix="bsv", dir="/tmp"))
    bus = Bus(name=name, control=directory / f"{name}.sock", **options)
    try:
        if samples is not None:
            sample_services.start(bus, **samples)
        yield bus
    finally:
        bus.close(timeout=close_timeout)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def counted_bus(
    name: str,
    *,
    samples: bool = False,
    releaser: bool = True,
    close_timeout: float = 10.0,
) -> Iterator[tuple[Bus, Counted]]:
    """``control_bus`` with ``Counted`` (after the quiet sample services if ``samples``).

    Args:
        name: the bus's name.
        samples: start the sample services first (``QUIET_SAMPLES``).
        releaser: add ``Releaser`` too, so a blocked ``counted.wait_sync`` can be
            let go through the bus.
        close_timeout: how long ``close`` waits; a test that may leave
            ``counted.wait_async`` running (it waits for nothing) keeps it short,
            since close cancels it only once this runs out.
    """
    counted = Counted()
    with control_bus(
        name, samples=QUIET_SAMPLES if samples else None, close_timeout=close_timeout
    ) as bus:
        try:
            bus.add_service(counted)
            if releaser:
                bus.add_service(Releaser(counted))
            yield bus, counted
        finally:
            counted.release.set()  # before close: a blocked wait_sync would hold it up
