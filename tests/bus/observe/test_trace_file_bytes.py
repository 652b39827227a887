"""A trace file's bytes, written by C straight from records, are the Python code's.

``OtlpLines.write_many`` makes a batch's lines as UTF-8 bytes, each line
ended: in C (``Encoder.write_many``) with no str per span, or by the Python
code, which is the reference. Both are compared byte for byte here, over
every record kind, non-ASCII text, lone surrogates (a line UTF-8 cannot
carry is written all ASCII, as ``json`` escapes it), very long arguments
and batches cut into several lines; and the exporter's side: one write per
batch, a full disk and a closed file counted as failures, never raised.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, Service, listener
from bus._observe._jsonval import Encoded
from bus._observe._otlp_file import OtlpJsonFileExporter
from bus._observe._otlp_lines import OtlpLines, c_available, span_total
from bus._observe._records import Flat, span_count
from bus.testing import wait_idle
from tests.bus.observe.test_otlp_lines_c import (
    COMMON,
    HANDED_BACK,
    ODD,
    call,
    delivery,
    dumped,
    fire,
    makers,
)

pytestmark = pytest.mark.timeout(60)

needs_c = pytest.mark.skipif(not c_available(), reason="the C encoder was not built")

EVERY = [*COMMON.values(), *HANDED_BACK.values()]


def _no_failure(record: Flat, exc: Exception) -> None:
    raise AssertionError(f"{record!r} failed: {exc!r}")


def reference(lines: OtlpLines, records: list[Flat]) -> bytes:
    """The file's bytes as the Python code makes them: a line per group, json's escapes."""
    spans: list[str] = []
    assert super(OtlpLines, lines).build_many(records, spans, _no_failure) == records
    out = b""
    for line in lines.lines(spans):
        try:
            out += line.encode("utf-8") + b"\n"
        except UnicodeEncodeError:
            out += json.dumps(json.loads(line), separators=(",", ":")).encode("ascii") + b"\n"
    return out


def both(limit: int = 512) -> tuple[OtlpLines, OtlpLines]:
    in_c, in_python, _ = makers(limit)
    if not in_c.accelerated:
        pytest.skip("the C encoder was not built")
    return in_c, in_python


def spans_of(data: bytes) -> list[dict[str, Any]]:
    assert data.endswith(b"\n")
    return [
        span
        for line in data.decode("utf-8").split("\n")[:-1]
        for span in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    ]


@needs_c
@pytest.mark.parametrize("limit", [1, 10, 512, 4096])
def test_c_writes_the_bytes_the_python_code_writes(limit: int) -> None:
    records = EVERY * 3
    random.Random(limit).shuffle(records)  # C's spans and Python's, interleaved
    in_c, in_python = both(limit)
    made, data, count = in_c.write_many(records, _no_failure)
    assert made == records
    assert in_python.write_many(records, _no_failure) == (records, data, count)
    assert data == reference(in_python, records)
    assert count == sum(map(span_count, records)) == len(spans_of(data))
    # The spans, taken back out of the lines, are OtlpSpans' objects.
    expected = json.loads(dumped(makers(limit)[2], records))["resourceSpans"][0]
    assert spans_of(data) == expected["scopeSpans"][0]["spans"]


@needs_c
def test_a_line_with_a_lone_surrogate_is_escaped_as_json_escapes_it() -> None:
    in_c, in_python = both()
    surrogate = HANDED_BACK["call, surrogate"]
    # Non-ASCII of every width (and DEL) in C's spans and Python's, on the line too.
    records = [COMMON["call, odd text"], surrogate, COMMON["delivery, odd"], fire(args=(ODD,))]
    _, data, _ = in_c.write_many(records, _no_failure)
    assert data.isascii()
    assert data.count(b"\n") == 1
    assert "\\ud800" in data.decode()
    assert "\\ud834\\udd1e" in data.decode()  # 𝄞 as a pair
    assert "\\u007f" in data.decode()
    assert data == in_python.write_many(records, _no_failure)[1] == reference(in_python, records)


@needs_c
def test_only_the_line_with_the_surrogate_is_escaped() -> None:
    in_c, in_python = both(100_000)
    long_odd = fire(args=("é" * 20_000,))  # two of these do not fit one line
    records = [long_odd, HANDED_BACK["call, surrogate"], long_odd, COMMON["delivery, odd"]]
    _, data, _ = in_c.write_many(records, _no_failure)
    first, second = data.decode("utf-8").split("\n")[:-1]
    assert first.isascii()
    assert "\\u00e9" in first
    assert "\\ud800" in first
    assert not second.isascii()
    assert "é" * 20_000 in second
    assert data == reference(in_python, records)


@needs_c
@pytest.mark.parametrize("seed", range(6))
def test_random_text_is_written_alike(seed: int) -> None:
    # Every kind of character, in arguments (C's), and in an annotation
    # (the Python code's record), with and without a lone surrogate.
    draw = random.Random(seed)
    alphabet = ["a", "~", "\x7f", "\x00", "\n", '"', "\\", "é", "\u2028", "☃", "\uffff", "𝄞"]
    surrogates = ["\ud800", "\udfff", "\udbff"]

    def text() -> str:
        pool = alphabet + (surrogates if draw.random() < 0.3 else [])
        return "".join(draw.choice(pool) for _ in range(draw.randrange(0, 40)))

    records: list[Flat] = []
    for _ in range(60):
        extras = ({"user.note": text()}, None, None)
        records += [
            call(args=(text(), text()), result=text()),
            delivery(name=text().replace("\ud800", "x") or "e", extras=extras),
            fire(args=(text(),), caller="c"),
        ]
    in_c, in_python = both(64)
    made, data, count = in_c.write_many(records, _no_failure)
    assert made == records
    assert data == reference(in_python, records)
    assert count == len(spans_of(data))


@needs_c
def test_a_long_batch_is_cut_into_lines_mid_batch_alike() -> None:
    in_c, in_python = both(100_000)
    records = [delivery(span_id=n + 1, service="sérvice") for n in range(700)]
    records[350:350] = [fire(args=("z" * 90_000,))]  # longer than a line: a line of its own
    records[10:10] = [call(args=Encoded('["' + "☃" * 70_000 + '"]', True, False))]
    _, data, count = in_c.write_many(records, _no_failure)
    assert data == reference(in_python, records)
    lines = data.split(b"\n")[:-1]
    assert len(lines) > 5
    long = [line for line in lines if b"z" * 90_000 in line or "☃".encode() * 1000 in line]
    assert len(long) == 3  # the call's two spans each carry the long arguments
    prefix = lines[0][: lines[0].index(b'"spans":[') + len(b'"spans":[')]
    for line in lines:
        assert line.startswith(prefix)
        assert line.endswith(b"]}]}]}")
        if line not in long:
            assert len(line) - len(prefix) - 6 <= 64_000
    assert count == len(spans_of(data)) == 700 + 1 + 2


@needs_c
def test_an_empty_batch_and_a_batch_of_failures_write_nothing() -> None:
    in_c, in_python = both()
    failures: list[Flat] = []
    for lines in (in_c, in_python):
        assert lines.write_many([], _no_failure) == ([], b"", 0)
        bad: list[Any] = [(7, 1), "not a record"]
        assert lines.write_many(bad, lambda r, e: failures.append(r)) == ([], b"", 0)
    assert len(failures) == 4


@needs_c
def test_a_value_hook_writing_again_gets_buffers_of_its_own() -> None:
    in_c, in_python = both()
    inner: list[tuple[list[Flat], bytes, int]] = []

    def reentering(value: Any) -> tuple[str, bool, bool]:
        inner.append(in_c._c.write_many([fire(), call()], _no_failure))  # type: ignore[union-attr]
        return in_c._value_json(value)

    in_c._c = type(in_c._c)(  # type: ignore[misc]
        512, 0x101, (3, 2, 4, 5), reentering, in_c._build_python, Encoded, in_c._prefix.encode()
    )
    records = [delivery(), call(kwargs={"a": 1}), fire()]
    made, data, count = in_c.write_many(records, _no_failure)
    assert (made, data, count) == in_python.write_many(records, _no_failure)
    assert inner == [in_python.write_many([fire(), call()], _no_failure)]


def test_a_resource_utf8_cannot_carry_leaves_the_lines_to_python() -> None:
    from opentelemetry.sdk.resources import Resource

    lines = OtlpLines(Resource.create({"odd": "a\udc80"}), json_limit=64, redact=None)
    _, data, count = lines.write_many([fire(), delivery()], _no_failure)
    assert data.isascii()
    assert b"\\udc80" in data
    assert count == 2 == len(spans_of(data))


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "python"])
def test_span_total_counts_as_span_count(accelerated: bool) -> None:
    lines = makers()[0 if accelerated else 1]
    if accelerated and not lines.accelerated:
        pytest.skip("the C encoder was not built")
    records: list[Any] = [*EVERY, ("x",), (1,), (2, None)]
    assert lines.span_total(records) == sum(map(span_count, records))
    assert span_total(EVERY) == sum(map(span_count, EVERY)) == lines.span_total(EVERY)
    assert lines.span_total([]) == 0


@needs_c
@pytest.mark.timeout(120)
def test_writing_leaks_nothing() -> None:
    in_c, _ = both(16)
    records = [*EVERY, fire(args=("z" * 70_000,))]

    def round_() -> None:
        for _ in range(40):
            in_c.write_many(records, lambda record, exc: None)
            in_c.span_total(records)

    round_()
    before = sys.getallocatedblocks()
    for _ in range(20):
        round_()
    assert sys.getallocatedblocks() - before < 200


# -- the exporter ---------------------------------------------------------------


def test_the_exporter_appends_the_bytes_and_fails_once_shut_down(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"before\n")
    exporter = OtlpJsonFileExporter(path)
    assert exporter.write_lines(b'{"a":"\xc3\xa9"}\n{"b":1}\n').name == "SUCCESS"
    assert exporter.write_line('{"c":"\ud800"}').name == "SUCCESS"
    assert path.read_bytes() == b'before\n{"a":"\xc3\xa9"}\n{"b":1}\n{"c":"\\ud800"}\n'
    exporter.shutdown()
    assert exporter.write_lines(b"{}\n").name == "FAILURE"
    exporter.shutdown()  # twice: nothing to do
    assert path.read_bytes().endswith(b'"\\ud800"}\n')


def test_a_stream_is_written_as_text(tmp_path: Path) -> None:
    with (tmp_path / "s.jsonl").open("w", encoding="utf-8") as stream:
        exporter = OtlpJsonFileExporter(stream=stream)
        assert exporter.write_lines('{"a":"é"}\n'.encode()).name == "SUCCESS"
        exporter.shutdown()
        assert not stream.closed  # not the exporter's to close
        assert exporter.write_lines(b"{}\n").name == "FAILURE"
    assert (tmp_path / "s.jsonl").read_text(encoding="utf-8") == '{"a":"é"}\n'


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_full_disk_is_a_failure_not_an_exception() -> None:
    exporter = OtlpJsonFileExporter("/dev/full")
    assert exporter.write_lines(b"{}\n" * 10_000).name == "FAILURE"
    exporter.shutdown()


# -- a bus writing its trace file ------------------------------------------------


class Watcher(Service):
    name = "watcher"

    @listener("tick")
    def on_tick(self, *args: Any) -> None:
        pass


def _traced_bus(
    make_bus: Callable[..., Bus], monkeypatch: pytest.MonkeyPatch, path: Path, pure: bool
) -> Bus:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "bus_otlp_json_file")
    monkeypatch.setenv("BUS_TRACE_FILE", str(path))
    monkeypatch.setenv("BUS_PURE_PYTHON", "1" if pure else "")
    bus = make_bus(trace_overflow="wait")
    bus.add_service(Watcher())
    return bus


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_a_bus_writes_odd_text_and_long_arguments_to_its_file(
    make_bus: Callable[..., Bus], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pure: bool
) -> None:
    path = tmp_path / "odd.jsonl"
    bus = _traced_bus(make_bus, monkeypatch, path, pure)
    assert bus._sink is not None
    assert bus._sink._lines.accelerated == (c_available() and not pure)
    sent = [ODD, "a\ud800b", "é" * 100_000, "𝄞" * 3, "plain"]
    for n in range(200):
        bus.fire_event("tick", sent[n % len(sent)], n)
    wait_idle(bus)
    assert bus.flush_traces(timeout=20)
    data = path.read_bytes()
    written = spans_of(data)
    ring = bus.spans.otlp()["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert written == ring
    assert len(written) == 400 == bus.inspect()["tracing"]["exported"]
    assert bus.inspect()["tracing"]["failed"] == 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_a_full_disk_counts_every_record_failed_and_the_bus_goes_on(
    make_bus: Callable[..., Bus], monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    bus = _traced_bus(make_bus, monkeypatch, Path("/dev/full"), pure)
    for n in range(300):
        bus.fire_event("tick", n)
    wait_idle(bus)
    assert bus.flush_traces(timeout=20)
    tracing = bus.inspect()["tracing"]
    assert tracing["failed"] == 600  # each record made, an event and its delivery
    assert tracing["exported"] == 600
    assert tracing["error"] is None
    assert len(bus.spans.records()) == 600  # the ring has them all the same


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_a_file_closed_while_the_bus_runs_counts_failures(
    make_bus: Callable[..., Bus], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pure: bool
) -> None:
    path = tmp_path / "closed.jsonl"
    bus = _traced_bus(make_bus, monkeypatch, path, pure)
    bus.fire_event("tick", "before")
    wait_idle(bus)
    assert bus.flush_traces(timeout=20)
    before = path.read_bytes()
    assert len(spans_of(before)) == 2
    for exporter in bus._files:
        exporter.shutdown()
    for n in range(50):
        bus.fire_event("tick", n)
    wait_idle(bus)
    assert bus.flush_traces(timeout=20)
    assert path.read_bytes() == before
    tracing = bus.inspect()["tracing"]
    assert tracing["failed"] == 100
    assert tracing["error"] is None
    assert tracing["exported"] == 102


@needs_c
@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_a_line_is_cut_exactly_where_its_text_would_pass_64000_bytes(extra: int) -> None:
    # Seven spans of 9,142 bytes and their commas make 64,000 bytes exactly:
    # they fit one line; a byte more each and the seventh begins the next.
    in_c, in_python = both(100_000)
    spans: list[str] = []
    in_python.build_many([fire(args=("",))], spans, _no_failure)
    pad = 9_142 + extra - len(spans[0].encode())
    records = [fire(span_id=n + 1, args=("é" * (pad // 2) + "z" * (pad % 2),)) for n in range(9)]
    _, data, _ = in_c.write_many(records, _no_failure)
    assert data == reference(in_python, records)
    first = data.split(b"\n")[0]
    assert len(spans_of(first + b"\n")) == (7 if extra <= 0 else 6)


@needs_c
def test_ints_and_ids_of_every_size_are_written_alike() -> None:
    # Decimal in 8-digit pieces, hex a 32-bit word at a time: every digit
    # count, both signs, the ends of 64 bits, and ids of every nibble.
    draw = random.Random(7)
    ints = [0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62)]
    ints += [sign * (10**k + delta) for k in range(19) for delta in (-1, 0, 1) for sign in (1, -1)]
    ints += [draw.randrange(-(2**63), 2**63) for _ in range(300)]
    ints = [n for n in ints if -(2**63) <= n < 2**63]
    ids = [1, 0xF, 0xA, 0x9, 2**64 - 1, 0x0123456789ABCDEF, 0xFEDCBA9876543210, 2**32, 2**32 - 1]
    ids += [draw.randrange(1, 2**64) for _ in range(300)]
    records: list[Flat] = []
    for n, ident in enumerate(ids):
        chosen = tuple(ints[(n * 3 + k) % len(ints)] for k in range(3))
        start = abs(chosen[0]) % 2**62
        records += [
            call(client_id=ident, server_id=ids[-n], parent_id=ident >> (n % 64), args=chosen),
            delivery(trace_id=ident << 64 | ids[n - 1], span_id=ident, fire_span_id=ids[n - 2],
                     start_ns=start, end_ns=start + n, fire_sent_ns=start - n * 997),
            fire(span_id=ident, listeners=n, sent_ns=start, end_ns=abs(chosen[1]) % 2**62),
        ]  # fmt: skip
    # Past 63 bits: the Python code's, not a negative number.
    past = [fire(end_ns=2**63), delivery(end_ns=2**63, start_ns=2**64 - 1), call(sent_ns=2**63)]
    past += [call(client_id=2**64), delivery(span_id=2**64 + 5), fire(parent_id=2**65)]
    in_c, in_python = both()
    _, data, _ = in_c.write_many(records + past, _no_failure)
    assert data == reference(in_python, records + past)
    written = spans_of(data)
    assert [int(span["spanId"], 16) for span in written[2:-8:4]] == ids
    assert written[-8]["endTimeUnixNano"] == str(2**63)
    assert written[-2]["spanId"] == "%x" % (2**64 + 5)


@needs_c
@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "python"])
def test_a_batch_under_a_line_is_the_line_written_before(accelerated: bool) -> None:
    # Before write_many the trace thread wrote line(build_many's texts) and
    # a newline through a UTF-8 text stream: a batch that fits one line is
    # the same bytes now.
    lines = both()[0 if accelerated else 1]
    records = [*COMMON.values(), *(r for k, r in HANDED_BACK.items() if "surrogate" not in k)]
    spans: list[str] = []
    assert lines.build_many(records, spans, _no_failure) == records
    _, data, _ = lines.write_many(records, _no_failure)
    assert data.count(b"\n") == 1
    assert data == (lines.line(spans) + "\n").encode("utf-8")


def _with_hook(lines: OtlpLines, hook: Callable[[Any], tuple[str, bool, bool]]) -> None:
    encoder = type(lines._c)
    prefix = lines._prefix.encode()
    lines._c = encoder(512, 0x101, (3, 2, 4, 5), hook, lines._build_python, Encoded, prefix)


@needs_c
def test_a_failing_value_hook_hands_the_record_to_python_and_frees_the_buffers() -> None:
    in_c, in_python = both()

    def hostile(value: Any) -> tuple[str, bool, bool]:
        raise RuntimeError("hook broke")

    _with_hook(in_c, hostile)
    records = [fire(), call(kwargs={"a": 1}), delivery()]
    assert in_c.write_many(records, _no_failure) == in_python.write_many(records, _no_failure)
    assert in_c._c is not None
    assert in_c._c.build(fire(), [])  # C's again: the buffers were let go


@needs_c
def test_an_interrupt_in_a_value_hook_is_not_swallowed_and_frees_the_buffers() -> None:
    in_c, _ = both()

    def interrupted(value: Any) -> tuple[str, bool, bool]:
        raise KeyboardInterrupt

    _with_hook(in_c, interrupted)
    with pytest.raises(KeyboardInterrupt):
        in_c.write_many([fire(), call(result={"a": 1})], _no_failure)
    assert in_c._c is not None
    assert in_c._c.build(fire(), [])
