"""The NATS benchmark runs and does the work it times (no timing is asserted)."""

from __future__ import annotations

import pytest

from benchmarks.nats import run_nats
from tests.bus.nats.conftest import NatsServer


@pytest.mark.timeout(120)
def test_the_nats_benchmark_measures_every_figure(nats_server: NatsServer) -> None:
    report = run_nats(nats_server.url, calls=50, events=500)
    assert report.bare_us > 0
    assert report.remote_us > 0
    assert report.events_per_s > 0
    assert report.local_us > 0
    assert report.local_nats_us > 0
    assert set(report.met()) == {"remote_ratio", "events_per_s", "local_ratio"}
    assert "remote command round trip" in report.render()
    assert report.to_json()["events"] == 500
