"""OTLP JSON made straight from records equals what the SDK route makes of them.

The ring, the console and the bus's own trace files use ``OtlpSpans``;
applications' span processors get ``ReadableSpan``s from ``SpanBuilder``.
Both are made from the same flat records, and must say the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus
from bus._observe._otlp_lines import OtlpLines, c_available
from bus.otlp import encode_spans
from bus.testing import wait_idle
from tests.bus.observe.varied_traffic import start, traffic

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("attach", [False, True], ids=["traced", "traced+watched"])
def test_otlp_from_records_equals_the_sdk_route(make_bus: Callable[..., Bus], attach: bool) -> None:
    bus = make_bus(json_limit=512)
    if attach:
        bus.watch(lambda activity: None)
    traffic(bus, start(bus))
    assert bus.flush_traces(timeout=10)
    direct = bus.spans.otlp()
    via_sdk = encode_spans(bus.spans.spans())
    assert direct == via_sdk
    spans = direct["resourceSpans"][0]["scopeSpans"][0]["spans"]
    names = {s["name"] for s in spans}
    # every kind of span and mark is in there, so the comparison means something
    assert {"ok", "fails", "annotated", "send thing.one", "process thing.two"} <= names
    assert any(s["status"].get("code") == 2 for s in spans)
    assert any(s.get("events") for s in spans)
    assert any(s.get("links") for s in spans)
    keys = {a["key"] for s in spans for a in s["attributes"]}
    assert {"bus.args.lossy", "bus.args.truncated", "bus.replayed", "user.note"} <= keys


def test_a_batch_of_records_and_one_trace_are_encoded_alike(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus()
    traffic(bus, start(bus))
    assert bus.flush_traces(timeout=10)
    records = bus.spans.records()
    assert bus.spans.otlp(records[:3]) == encode_spans(
        [s for r in records[:3] for s in _sdk_spans(bus, r)]
    )
    newest = bus.spans.trace_ids(1)[0]
    assert bus.spans.otlp(trace_ids={newest}) == encode_spans(
        [s for r in records if r[1] == newest for s in _sdk_spans(bus, r)]
    )


def _sdk_spans(bus: Bus, record: Any) -> list[Any]:
    out: list[Any] = []
    bus.spans._builder.build(record, out)
    return out


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "python"])
def test_trace_file_lines_are_the_json_of_the_otlp_objects(
    make_bus: Callable[..., Bus], accelerated: bool
) -> None:
    # The bus writes its own trace files as text made straight from records
    # (OtlpLines, in C where the encoder was built, test_otlp_lines_c.py);
    # it must be byte for byte the JSON of OtlpSpans' objects.
    if accelerated and not c_available():
        pytest.skip("the C encoder was not built")
    bus = make_bus(json_limit=512)
    traffic(bus, start(bus))
    bus.fire_event("thing.unicode", 1.5, float("nan"), True, 'naïve ☃\n"quoted"\ud800')
    bus.fire_event("thing.big", 10**30, -0.0, 1e300)
    wait_idle(bus)
    assert bus.flush_traces(timeout=10)
    otlp = bus.spans._otlp
    lines = OtlpLines(
        otlp._resource, json_limit=otlp._limit, redact=otlp._redact, accelerated=accelerated
    )
    assert lines.accelerated == accelerated
    records = bus.spans.records()
    assert len(records) > 15

    def dumped(data: dict[str, Any]) -> str:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    for record in records:  # each alone, with every kind of mark
        made: list[str] = []
        lines.build(record, made)
        assert lines.line(made) == dumped(otlp.traces_data([record]))
    made = []
    for record in records * 2:  # and together, the remembered attributes reused
        lines.build(record, made)
    assert lines.line(made) == dumped(otlp.traces_data(records * 2))
    assert lines.line([]) == dumped(otlp.traces_data([]))
