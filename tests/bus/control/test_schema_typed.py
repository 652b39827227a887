"""The typed contract at the console's boundary: arguments converted or refused, over a socket.

A real ``Bus(control=True)`` with the ``Typed`` service, and the raw line
client: JSON in, the handler gets the annotated types; a wrong value is
refused with ``-32012`` naming the parameter, the type and the value, and
nothing runs; typed results come back as the JSON they stand for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bus import Bus
from bus.control.protocol import ErrorCode
from tests.bus.control.control_client import LineClient
from tests.bus.control.typed_service import Typed

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def served(serve: Callable[..., Bus]) -> Bus:
    return serve("typed", Typed())


def typed(served: Bus) -> Typed:
    service = served._runtimes["typed"].service
    assert isinstance(service, Typed)
    return service


def value(client: LineClient, name: str, *args: Any, **kwargs: Any) -> Any:
    reply = client.result("execute", {"name": name, "args": list(args), "kwargs": kwargs})
    assert "lossy" not in reply, reply
    return reply["value"]


def refused(client: LineClient, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    error = client.error("execute", {"name": name, "args": list(args), "kwargs": kwargs})
    assert error["code"] == ErrorCode.INVALID_ARGUMENT == -32012, error
    assert error["data"]["type"] == "InvalidArgumentError"
    assert error["data"]["target"] == name
    return error


# -- converted ------------------------------------------------------------------------------


def test_a_dataclass_arrives_as_one_and_comes_back_as_json(client: LineClient) -> None:
    # The handler asserts isinstance: a dict would fail it.
    assert value(client, "typed.point", {"x": 1, "y": 2}) == {"x": 1, "y": 2}
    assert value(client, "typed.point", p={"x": "3"}) == {"x": 3, "y": 0}


def test_an_enum_arrives_as_its_member(client: LineClient) -> None:
    assert value(client, "typed.mode", "heat") == "heat"
    assert value(client, "typed.mode", mode="off") == "off"


def test_a_typeddict_is_checked_and_arrives_as_a_dict(client: LineClient) -> None:
    got = value(client, "typed.address", {"street": "Main", "number": "12"})
    assert got == {"types": {"a": "dict"}, "values": {"a": {"street": "Main", "number": 12}}}


def test_a_pydantic_model_arrives_as_a_model(client: LineClient) -> None:
    assert value(client, "typed.order", {"item": "tea", "quantity": 2}) == {
        "item": "tea",
        "quantity": 2,
    }


def test_a_literal_value(client: LineClient) -> None:
    assert value(client, "typed.size", "m") == "m"


def test_datetime_and_date(client: LineClient) -> None:
    got = value(client, "typed.when", "2026-03-01T12:30:00+00:00", day="2026-03-02")
    assert got["types"] == {"at": "datetime", "day": "date"}
    assert got["values"] == {"at": "2026-03-01T12:30:00Z", "day": "2026-03-02"}


def test_uuid_decimal_and_path(client: LineClient) -> None:
    got = value(client, "typed.ids", "12345678123456781234567812345678", "1.25", "/tmp/x")
    assert got["types"] == {"u": "UUID", "amount": "Decimal", "path": "PosixPath"}
    assert got["values"] == {
        "u": "12345678-1234-5678-1234-567812345678",
        "amount": "1.25",
        "path": "/tmp/x",
    }


def test_optional_union_and_generic_containers(client: LineClient) -> None:
    got = value(
        client,
        "typed.generic",
        n="7",
        tags=["a", "b"],
        scores={"x": 1},
        pair=[3, "three"],
        points=[{"x": 1}, {"x": 2, "y": 5}],
    )
    assert got["types"] == {
        "n": "int",
        "tags": "list",
        "scores": "dict",
        "pair": "tuple",
        "points": "list",
    }
    assert got["values"]["scores"] == {"x": 1.0}
    assert got["values"]["points"] == [{"x": 1, "y": 0}, {"x": 2, "y": 5}]
    assert value(client, "typed.generic", n=None)["values"]["n"] is None


def test_positional_only_var_positional_and_var_keyword(client: LineClient) -> None:
    got = value(client, "typed.many", {"x": 1}, "2", 3, flag="true", ratio="0.5")
    assert got["types"] == {"first": "Point", "values": "tuple", "flag": "bool", "named": "dict"}
    assert got["values"] == {
        "first": {"x": 1, "y": 0},
        "values": [2, 3],
        "flag": True,
        "named": {"ratio": 0.5},
    }


def test_an_unannotated_parameter_passes_through(client: LineClient) -> None:
    got = value(client, "typed.loose", {"any": ["thing"]}, n="4")
    assert got["types"] == {"anything": "dict", "n": "int"}
    assert got["values"] == {"anything": {"any": ["thing"]}, "n": 4}


def test_an_unresolvable_annotation_is_not_checked(client: LineClient) -> None:
    assert value(client, "typed.unresolved", [1], n="2")["values"] == {"thing": [1], "n": 2}


# -- refused --------------------------------------------------------------------------------


def test_a_wrong_value_names_the_parameter_the_type_and_the_value(
    served: Bus, client: LineClient
) -> None:
    error = refused(client, "typed.mode", "warm")
    data = error["data"]
    assert (data["param"], data["expected"], data["value"]) == ("mode", "Mode", "warm")
    assert error["message"] == (
        "typed.mode(mode: Mode) -> Mode: argument 'mode' must be Mode, not 'warm' "
        "(Input should be 'heat' or 'off')"
    )
    assert data["problems"] == [
        {
            "param": "mode",
            "path": "",
            "expected": "Mode",
            "value": "warm",
            "message": "Input should be 'heat' or 'off'",
        }
    ]
    # Nothing was dispatched: the command was never called.
    commands = {c["name"]: c for c in served.inspect()["commands"]}
    assert commands["typed.mode"]["calls"] == 0


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "param", "path", "bad"),
    [
        ("typed.point", [{"x": "one"}], {}, "p", "x", "one"),
        ("typed.point", [{"y": 1}], {}, "p", "x", None),
        ("typed.point", [[1, 2]], {}, "p", "", [1, 2]),
        ("typed.address", [{"street": "Main"}], {}, "a", "number", None),
        ("typed.order", [{"item": "tea", "quantity": 0}], {}, "o", "quantity", 0),
        ("typed.size", ["xl"], {}, "size", "", "xl"),
        ("typed.when", ["yesterday", "2026-01-01"], {}, "at", "", "yesterday"),
        ("typed.when", ["2026-01-01T00:00:00", "2026-02-30"], {}, "day", "", "2026-02-30"),
        ("typed.ids", ["not-a-uuid", "1", "/"], {}, "u", "", "not-a-uuid"),
        ("typed.ids", ["12345678123456781234567812345678", "lots", "/"], {}, "amount", "", "lots"),
        ("typed.ids", ["12345678123456781234567812345678", "1", 5], {}, "path", "", 5),
        ("typed.generic", [], {"n": "seven"}, "n", "", "seven"),
        ("typed.generic", [], {"tags": "a"}, "tags", "", "a"),
        ("typed.generic", [], {"tags": ["a", 1]}, "tags", "[1]", 1),
        ("typed.generic", [], {"scores": {"x": "high"}}, "scores", "x", "high"),
        ("typed.generic", [], {"pair": [1]}, "pair", "[1]", None),
        ("typed.generic", [], {"points": [{"x": 1}, {"x": "b"}]}, "points", "[1].x", "b"),
        ("typed.many", [{"x": 1}, 2, "three"], {}, "values", "[1]", "three"),
        ("typed.many", [{"x": 1}], {"ratio": "half"}, "ratio", "", "half"),
        ("typed.loose", [None], {"n": 1.5}, "n", "", 1.5),
    ],
)
def test_every_type_family_refuses_a_wrong_value(
    served: Bus,
    client: LineClient,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    param: str,
    path: str,
    bad: Any,
) -> None:
    error = refused(client, name, *args, **kwargs)
    problem = error["data"]["problems"][0]
    assert (problem["param"], problem["path"], problem["value"]) == (param, path, bad)
    assert f"argument {param!r} must be" in error["message"]
    assert served.inspect()["totals"]["handled"] == 0


def test_every_wrong_argument_is_named_at_once(client: LineClient) -> None:
    error = refused(client, "typed.generic", n="x", tags=[1], pair="p")
    assert [p["param"] for p in error["data"]["problems"]] == ["n", "tags", "pair"]


def test_a_string_is_not_taken_for_a_number_nor_a_number_for_a_string(
    client: LineClient,
) -> None:
    # The example: say_hello 42 said "Hello, 42!".
    assert (
        refused(client, "typed.address", {"street": 42, "number": 1})["data"]["problems"][0]["path"]
        == "street"
    )


def test_arguments_that_do_not_bind_are_still_bad_arguments(client: LineClient) -> None:
    error = client.error("execute", {"name": "typed.mode", "args": ["heat", "off"]})
    assert error["code"] == ErrorCode.BAD_ARGUMENTS
    assert error["data"]["signature"] == "(mode: Mode) -> Mode"


def test_an_unknown_command_is_still_not_found(client: LineClient) -> None:
    error = client.error("execute", {"name": "typed.mood", "args": ["heat"]})
    assert error["code"] == ErrorCode.NO_SUCH_COMMAND
    assert error["data"]["suggestions"][0] == "typed.mode"


def test_a_validating_bus_takes_the_converted_values_again(runtime_dir: Path) -> None:
    with Bus(name="strict", control=True, validate=True) as bus:
        bus.add_service(Typed())
        assert bus.address is not None
        client = LineClient(bus.address)
        try:
            assert value(client, "typed.point", {"x": "5"}) == {"x": 5, "y": 0}
            assert refused(client, "typed.point", {"x": "five"})["data"]["param"] == "p"
        finally:
            client.close()


# -- events -----------------------------------------------------------------------------------


def test_a_declared_event_is_converted_at_fire(served: Bus, client: LineClient) -> None:
    result = client.result("fire", {"name": "typed.moved", "kwargs": {"point": {"x": "1"}}})
    assert result == {"listeners": 1}
    ((name, args, kwargs),) = typed(served).wait_heard(1)
    assert (name, args) == ("typed.moved", ())
    assert list(kwargs) == ["point"]  # the default of mode is the handler's to apply
    assert type(kwargs["point"]).__name__ == "Point"
    assert (kwargs["point"].x, kwargs["point"].y) == (1, 0)


def test_a_declared_event_keeps_positional_arguments_positional(
    served: Bus, client: LineClient
) -> None:
    client.result("fire", {"name": "typed.moved", "args": [{"x": 2}, "off"]})
    ((_, args, kwargs),) = typed(served).wait_heard(1)
    assert kwargs == {}
    assert [type(a).__name__ for a in args] == ["Point", "Mode"]
    assert args[1].value == "off"


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"kwargs": {"point": {"x": "a"}}}, "point", "Input should be a valid integer"),
        ({"kwargs": {}}, "point", "Field required"),
        ({"kwargs": {"point": {"x": 1}, "mode": "warm"}}, "mode", "Input should be 'heat'"),
        (
            {"kwargs": {"point": {"x": 1}, "speed": 3}},
            "speed",
            "no such field; fields: point, mode",
        ),
        ({"args": [{"x": 1}], "kwargs": {"point": {"x": 1}}}, "point", "given twice"),
        ({"args": [{"x": 1}, "heat", 3]}, "*", "too many positional arguments"),
    ],
)
def test_a_declared_event_refuses_a_wrong_payload_and_fires_nothing(
    served: Bus, client: LineClient, params: dict[str, Any], param: str, message: str
) -> None:
    error = client.error("fire", {"name": "typed.moved", **params})
    assert error["code"] == ErrorCode.INVALID_ARGUMENT
    assert error["data"]["param"] == param
    assert message in error["data"]["problems"][0]["message"]
    client.result("wait_idle")
    assert typed(served).heard == []
    listeners = {entry["pattern"]: entry for entry in served.inspect()["listeners"]}
    assert listeners["typed.moved"]["deliveries"] == 0


def test_an_undeclared_event_is_fired_as_it_came(served: Bus, client: LineClient) -> None:
    client.result("fire", {"name": "typed.inferred", "args": ["m"], "kwargs": {"count": 2}})
    assert typed(served).wait_heard(1) == [("typed.inferred", ("m",), {"count": 2})]


# -- typed results where the console reads them ------------------------------------------------


def test_typed_results_reach_activity_and_spans_as_json(served: Bus, client: LineClient) -> None:
    import json

    sub = client.result("subscribe", {"topic": "activity", "patterns": ["typed.*"]})
    assert sub["subscription"] == 1
    assert value(client, "typed.point", {"x": 4}) == {"x": 4, "y": 0}
    returned = None
    while returned is None:
        note = client.notification()
        data = note["params"]["activity"]
        if data["kind"] == "return":
            returned = data
    assert json.loads(returned["result"]) == {"x": 4, "y": 0}
    served.flush_traces()
    servers = [
        s for s in served.spans.spans() if s.name == "typed.point" and s.kind.name == "SERVER"
    ]
    (span,) = servers
    attributes = dict(span.attributes or {})
    assert json.loads(str(attributes["bus.result"])) == {"x": 4, "y": 0}
    assert json.loads(str(attributes["bus.args"])) == [{"x": 4, "y": 0}]
    assert "bus.result.lossy" not in attributes
    assert "bus.args.lossy" not in attributes
