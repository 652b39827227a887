"""The C encoder's templates of event and delivery spans give the writers' text.

The C encoder keeps the fixed text of a delivery's span per (event,
pattern, service, thread) and of an event's per (event, caller), in a table
of 64 slots keyed by the identity of those strs (``_speedups_otlp_events.c``).
These records vary every part of a key, collide in the table, reuse equal
but distinct strs, and carry names that need escapes or are not ASCII, or
that UTF-8 cannot carry (the Python code's); each is written in C and by the
Python code, and the texts must be the same byte for byte.
"""

from __future__ import annotations

import gc
import random
import sys
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource

from bus._observe._jsonval import redact_secrets
from bus._observe._otlp_lines import OtlpLines, c_available
from bus._observe._records import DELIVERY, FIRE, Flat

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not c_available(), reason="the C encoder was not built"),
]

RESOURCE = Resource.create({"service.name": "svc"})
NAMES = ["tick", "order.paid", 'q"uote\\', "tab\there", "caf\u00e9 \u2603", "", "x" * 300]
THREADS: list[Any] = ["worker", "pool-1", None, "", "\u00fcber"]


def _delivery(draw: random.Random, name: str, pattern: str, service: str, thread: Any) -> Flat:
    sent = 1_700_000_000_000_000_000 + draw.randrange(10**12)
    start = sent + draw.randrange(10**9)
    return (
        DELIVERY, draw.getrandbits(128), draw.getrandbits(64), draw.getrandbits(64), name,
        pattern, service, sent, start, start + draw.randrange(10**9), thread, None, None,
        None, None,
    )  # fmt: skip


def _fire(draw: random.Random, name: str, caller: str, listeners: int) -> Flat:
    sent = 1_700_000_000_000_000_000 + draw.randrange(10**12)
    return (
        FIRE, draw.getrandbits(128), draw.choice([0, draw.getrandbits(64)]), draw.getrandbits(64),
        name, caller, (draw.randrange(100), "a"), draw.choice([{}, {"k": 1}]), sent,
        sent + draw.randrange(10**9), listeners, None, None,
    )  # fmt: skip


def _records(seed: int, count: int) -> list[Flat]:
    """Records whose keys repeat, change one part at a time, and outnumber the slots."""
    draw = random.Random(seed)
    patterns = [*NAMES, "order.*", "*"]
    services = ["ear", "bank", "\u00e9t\u00e9", 'sl"ash']
    found: list[Flat] = []
    for _ in range(count):
        name = draw.choice(NAMES)
        if draw.random() < 0.5:
            found.append(
                _delivery(
                    draw, name, draw.choice(patterns), draw.choice(services), draw.choice(THREADS)
                )
            )
        else:
            found.append(_fire(draw, name, draw.choice(services), draw.randrange(4)))
    return found


def _written(lines: OtlpLines, records: list[Flat]) -> list[str]:
    """Each record's line, one at a time."""
    texts = []
    for record in records:
        out: list[str] = []
        made = lines.build_many([record], out, _no_failure)
        assert made == [record]
        texts.append(lines.line(out))
    return texts


def _no_failure(record: Flat, exc: Exception) -> None:
    raise AssertionError(f"{record!r} failed: {exc!r}")


def _makers() -> tuple[OtlpLines, OtlpLines]:
    options: dict[str, Any] = {"json_limit": 512, "redact": redact_secrets}
    return (
        OtlpLines(RESOURCE, accelerated=True, **options),
        OtlpLines(RESOURCE, accelerated=False, **options),
    )


def test_templates_give_the_python_text_for_every_key_and_its_changes() -> None:
    in_c, in_python = _makers()
    records = _records(1, 3000)
    keys = {r[4:7] + r[10:11] if r[0] == DELIVERY else r[4:6] for r in records}
    assert len(keys) > 500  # many more than the table's slots: they replace each other
    for record in records:  # C wrote them: not Python against Python
        out: list[str] = []
        assert in_c._c.build(record, out), record
    assert _written(in_c, records) == _written(in_python, records)
    # and as one batch, as the trace thread writes them
    spans: list[str] = []
    assert in_c.build_many(records, spans, _no_failure) == records
    assert ",".join(spans) == ",".join(_written_spans(in_python, records))


def _written_spans(lines: OtlpLines, records: list[Flat]) -> list[str]:
    spans: list[str] = []
    lines.build_many(records, spans, _no_failure)
    return spans


def test_equal_strs_that_are_not_the_same_object_give_the_same_text() -> None:
    in_c, in_python = _makers()
    draw = random.Random(2)
    records = []
    for _ in range(50):
        # made afresh each time: equal, never identical (keys are by identity)
        name, pattern, service = ("ti" + "ck" * draw.randrange(1, 3)), "*", "e" + "ar"
        records.append(_delivery(draw, name, pattern, service, "w" + str(draw.randrange(2))))
        records.append(_fire(draw, name, service, 1))
    assert _written(in_c, records) == _written(in_python, records)


def test_a_name_utf8_cannot_carry_is_the_python_codes_and_spoils_no_template() -> None:
    in_c, in_python = _makers()
    draw = random.Random(3)
    lone = "bad\udc80"
    good = _delivery(draw, "tick", "tick", "ear", "worker")
    assert _written(in_c, [good]) == _written(in_python, [good])  # its template is made
    for record in [
        _delivery(draw, "tick", "tick", "ear", lone),  # the same slot family, a bad thread
        _delivery(draw, lone, "tick", "ear", "worker"),
        _delivery(draw, "tick", lone, "ear", "worker"),
        _fire(draw, "tick", lone, 1),
        _fire(draw, lone, "ear", 1),
    ]:
        out: list[str] = []
        assert not in_c._c.build(record, out), "C wrote a lone surrogate"
        assert out == []
        assert _written(in_c, [record]) == _written(in_python, [record])
    again = _delivery(draw, "tick", "tick", "ear", "worker")
    assert _written(in_c, [good, again]) == _written(in_python, [good, again])


def test_templates_hold_their_strs_and_let_go_of_them_with_the_encoder() -> None:
    def one_round(seed: int) -> None:
        in_c, _ = _makers()
        draw = random.Random(seed)
        records = [_delivery(draw, f"ev{i}", f"p{i}", f"s{i}", f"t{i}") for i in range(200)] + [
            _fire(draw, f"ev{i}", f"c{i}", 1) for i in range(200)
        ]
        _written(in_c, records)

    one_round(0)
    gc.collect()
    before = sys.getallocatedblocks()
    for seed in range(20):
        one_round(seed)
    gc.collect()
    assert sys.getallocatedblocks() - before < 200


def test_a_template_keeps_its_key_alive_so_no_other_str_takes_its_place() -> None:
    in_c, in_python = _makers()
    draw = random.Random(4)
    texts_c, texts_python = [], []
    for i in range(300):
        # a fresh str each time, dropped after: its address is free for the next
        name = "".join(["e", str(i % 7)])
        record = _delivery(draw, name, "*", "ear", "worker")
        texts_c += _written(in_c, [record])
        texts_python += _written(in_python, [record])
        del record, name
    assert texts_c == texts_python
