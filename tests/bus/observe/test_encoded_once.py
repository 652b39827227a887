"""A value is encoded once: the span, the activity and the ring share its JSON.

With a watcher attached, a command's arguments and its result are each
encoded once, however many things show them. The counts are taken on the real
encoders, wrapped so that they still run: ``_records.encode`` (which ``freeze``,
the hub and the span builder use), the span builder's own fast path for atoms
(``atoms_json``, ``atom_json``), and the hub's one entry (``Hub._encoded``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bus import Bus, Service, command
from bus._observe import _records, _span_parts
from bus._observe._activity import Activity
from bus._observe._hub import Hub

pytestmark = pytest.mark.timeout(30)


class Echo(Service):
    name = "echo"

    @command("echo")
    def echo(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    @command("greet")
    def greet(self, name: str, times: int, loud: bool = False) -> str:
        return f"Hello, {name}" + "!" * times if loud else "."


class Counted:
    """The values the encoders were asked to encode, as JSON text (tuples as lists)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.values: list[str] = []
        real_encode = _records.encode
        real_atoms, real_atom = _span_parts.atoms_json, _span_parts.atom_json

        def encode(value: Any, limit: int, redact: Any = None) -> Any:
            self._seen(value)
            return real_encode(value, limit, redact)

        def atoms_json(values: Any) -> str | None:
            self._seen(values)
            return real_atoms(values)

        def atom_json(value: Any) -> str | None:
            if value is not None:  # no kwargs, or a result still to come: nothing encoded
                self._seen(value)
            return real_atom(value)

        monkeypatch.setattr(_records, "encode", encode)
        monkeypatch.setattr(_span_parts, "atoms_json", atoms_json)
        monkeypatch.setattr(_span_parts, "atom_json", atom_json)

    def _seen(self, value: Any) -> None:
        self.values.append(json.dumps(value, sort_keys=True, default=repr))

    def times(self, value: Any) -> int:
        return self.values.count(json.dumps(value, sort_keys=True))


@pytest.fixture
def encodings(monkeypatch: pytest.MonkeyPatch) -> Counted:
    return Counted(monkeypatch)


def _watched(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Activity], list[Any]]:
    """Watch ``bus``; the activity seen, and the values the hub asked to encode."""
    seen: list[Activity] = []
    bus.watch(seen.append)
    hub = bus.observer
    assert isinstance(hub, Hub)
    asked: list[Any] = []
    real: Callable[[Any], Any] = hub._encoded

    def encoded(value: Any) -> Any:
        asked.append(value)
        return real(value)

    monkeypatch.setattr(hub, "_encoded", encoded)
    return seen, asked


@pytest.fixture(params=["traced", "untraced"])
def bus(request: pytest.FixtureRequest, tracer_provider: TracerProvider) -> Iterator[Bus]:
    if request.param == "traced":  # spans exported to an in-memory exporter
        b = Bus(name="once", tracer_provider=tracer_provider)
    else:
        b = Bus(name="once", tracing=False)
    try:
        b.add_service(Echo())
        yield b
    finally:
        b.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("echo", {"args": ["Alice", 3], "kwargs": {"loud": True}}), ("greet", "Hello, Alice!!!")],
)
def test_a_watched_call_encodes_its_arguments_once_and_its_result_once(
    name: str,
    expected: Any,
    bus: Bus,
    encodings: Counted,
    monkeypatch: pytest.MonkeyPatch,
    span_exporter: InMemorySpanExporter,
) -> None:
    """A mutable result is encoded as the handler returns it; an atom when first shown."""
    seen, asked = _watched(bus, monkeypatch)

    result = bus.execute_command(name, "Alice", 3, loud=True).result(timeout=10)
    assert bus.flush_traces(timeout=10)  # the spans are built: the trace thread encoded too
    assert bus.wait_idle(timeout=10)

    assert result == expected
    # One call to the hub's encoder each for the arguments, the keywords, the result.
    assert len(asked) == 3, asked
    assert encodings.times(["Alice", 3]) == 1, encodings.values
    assert encodings.times({"loud": True}) == 1, encodings.values
    assert encodings.times(expected) == 1, encodings.values
    assert len(encodings.values) == 3, encodings.values
    call = next(a for a in seen if a.kind == "call")
    ended = next(a for a in seen if a.kind == "return")
    assert (call.args, call.kwargs) == ('["Alice",3]', '{"loud":true}')
    assert json.loads(ended.result) == expected
    if bus.tracing:  # the spans show the very same text
        spans = span_exporter.get_finished_spans()
        client = next(s for s in spans if s.kind == SpanKind.CLIENT)
        server = next(s for s in spans if s.kind == SpanKind.SERVER)
        assert client.attributes is not None
        assert server.attributes is not None
        assert client.attributes["bus.args"] == call.args
        assert client.attributes["bus.kwargs"] == call.kwargs
        assert server.attributes["bus.result"] == ended.result
    else:
        assert span_exporter.get_finished_spans() == ()


def test_mutable_arguments_are_encoded_at_once_and_only_then(
    bus: Bus, encodings: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list argument is encoded when sent (it may change later), and that JSON is reused."""
    seen, asked = _watched(bus, monkeypatch)
    items = [1, 2]

    bus.execute_command("echo", items).result(timeout=10)
    assert bus.flush_traces(timeout=10)

    assert encodings.times([[1, 2]]) == 1, encodings.values
    assert encodings.times({"args": [[1, 2]], "kwargs": {}}) == 1, encodings.values
    assert len(encodings.values) == 2, encodings.values
    assert len(asked) == 2, asked
    call = next(a for a in seen if a.kind == "call")
    assert call.args == "[[1,2]]"
