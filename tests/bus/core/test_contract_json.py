"""Typed values as faithful JSON: what spans, activity and the console show of them.

pydantic's JSON mode turns dataclasses, models, enums, datetimes, UUIDs,
decimals, paths and sets into the JSON they stand for; ``lossy`` is left for
what truly is not JSON, and ``encode`` still never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from bus._observe._jsonval import encode, json_ready, redact_secrets
from tests.bus.control.typed_service import Mode, Order, Point

pytestmark = pytest.mark.timeout(30)


class Level(IntEnum):
    LOW = 1


@dataclass
class Login:
    user: str
    password: str
    at: datetime = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Holder:
    items: list[Any] = field(default_factory=list)


class Hostile:
    """Unknown to pydantic, and its repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Point(1, 2), {"x": 1, "y": 2}),
        (Mode.HEAT, "heat"),
        (Level.LOW, 1),
        (Order(item="tea", quantity=2), {"item": "tea", "quantity": 2}),
        (datetime(2026, 3, 1, 12, 30, tzinfo=UTC), "2026-03-01T12:30:00Z"),
        (date(2026, 3, 1), "2026-03-01"),
        (timedelta(seconds=90), "PT1M30S"),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Decimal("1.50"), "1.50"),
        (Path("/tmp/x"), "/tmp/x"),
        ({3}, [3]),
        (frozenset({"a"}), ["a"]),
        (b"bytes", "bytes"),
        ([Point(0, 0), {"mode": Mode.OFF}], [{"x": 0, "y": 0}, {"mode": "off"}]),
        ({Mode.HEAT: 1, UUID(int=2): 2}, {"heat": 1, "00000000-0000-0000-0000-000000000002": 2}),
    ],
)
def test_typed_values_are_the_json_they_stand_for(value: Any, expected: Any) -> None:
    encoded = encode(value, 10_000)
    assert json.loads(encoded.text) == expected
    assert (encoded.lossy, encoded.truncated) == (False, False)
    assert json_ready(value) == (expected, False)


def test_fields_of_a_typed_value_are_redacted_like_any_dict_entry() -> None:
    encoded = encode(Login("ann", "hunter2"), 10_000, redact_secrets)
    assert json.loads(encoded.text) == {
        "user": "ann",
        "password": "***",
        "at": "2026-01-02T03:04:05Z",
    }


def test_what_is_not_json_inside_a_typed_value_is_marked_lossy() -> None:
    encoded = encode(Holder([1, object(), float("nan")]), 10_000)
    items = json.loads(encoded.text)["items"]
    assert items[0] == 1
    assert items[1]["$type"] == "object"
    assert items[2] == {"$repr": "nan", "$type": "float"}
    assert encoded.lossy is True


def test_a_generator_is_described_not_consumed() -> None:
    def numbers() -> Any:
        yield 1
        yield 2

    generator = numbers()
    encoded = encode(generator, 10_000)
    assert json.loads(encoded.text)["$type"] == "generator"
    assert encoded.lossy is True
    assert list(generator) == [1, 2]


def test_encode_never_raises_on_what_pydantic_cannot_encode() -> None:
    cyclic = Holder()
    cyclic.items.append(cyclic)
    for value in (Hostile(), Holder([Hostile()]), cyclic, b"\xff\xfe", [b"\xff"]):
        encoded = encode(value, 10_000)
        json.loads(encoded.text)
        assert encoded.lossy is True


def test_a_model_whose_serializer_raises_becomes_a_placeholder() -> None:
    from pydantic import field_serializer

    class Broken(BaseModel):
        n: int

        @field_serializer("n")
        def boom(self, n: int) -> int:
            raise ValueError("cannot")

    encoded = encode(Broken(n=1), 10_000)
    assert encoded.lossy is True
    assert json.loads(encoded.text)["$type"].endswith("Broken")


def test_plain_json_is_encoded_as_before() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": []}}
    encoded = encode(value, 10_000)
    assert json.loads(encoded.text) == value
    assert (encoded.lossy, encoded.truncated) == (False, False)
