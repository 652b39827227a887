"""The schema export: ``bus.schema.json_schema``, and the control protocol's ``schema`` method.

Every command's parameters and result and every event's payload, as pydantic
describes them, with the signature's ``required`` and ``default`` and the
types they share defined once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sample_services
from bus import Bus
from bus.control.protocol import ErrorCode
from bus.schema import asyncapi, json_schema
from tests.bus.control.control_client import LineClient
from tests.bus.control.typed_service import Typed

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def served(serve: Callable[..., Bus]) -> Bus:
    return serve("schemas", Typed(), tracing=False)


@pytest.fixture
def document(served: Bus) -> dict[str, Any]:
    return json_schema(served)


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/$defs/")
    found: dict[str, Any] = document["$defs"][ref.removeprefix("#/$defs/")]
    return found


def test_the_document_is_json_schema_with_commands_events_and_shared_defs(
    document: dict[str, Any],
) -> None:
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["title"] == "bus schemas"
    assert set(document["commands"]) == {
        "typed.point", "typed.mode", "typed.address", "typed.order", "typed.size", "typed.when",
        "typed.ids", "typed.generic", "typed.many", "typed.loose", "typed.unresolved",
    }  # fmt: skip
    assert set(document["events"]) == {"typed.moved", "typed.inferred"}
    # Point is used by several commands and an event, and defined once.
    assert document["$defs"]["Point"] == {
        "properties": {
            "x": {"title": "X", "type": "integer"},
            "y": {"default": 0, "title": "Y", "type": "integer"},
        },
        "required": ["x"],
        "title": "Point",
        "type": "object",
        "description": "A point on a grid.",
    }


def test_params_are_one_object_with_required_and_defaults(document: dict[str, Any]) -> None:
    generic = document["commands"]["typed.generic"]
    params = generic["params"]
    assert params["type"] == "object"
    assert params["additionalProperties"] is False
    assert "required" not in params
    assert params["properties"]["pair"]["default"] == [0, ""]
    assert params["properties"]["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert params["properties"]["n"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert params["properties"]["points"]["anyOf"][0] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Point"},
    }
    assert generic["description"] == "Optional, Union and generic containers."
    assert (generic["service"], generic["readonly"]) == ("typed", False)
    when = document["commands"]["typed.when"]["params"]
    assert when["required"] == ["at", "day"]
    assert when["properties"]["at"]["format"] == "date-time"
    assert when["properties"]["day"]["format"] == "date"
    ids = document["commands"]["typed.ids"]["params"]["properties"]
    assert ids["u"]["format"] == "uuid"
    assert ids["path"]["format"] == "path"


def test_enums_and_literals_list_their_choices(document: dict[str, Any]) -> None:
    mode = document["commands"]["typed.mode"]
    assert mode["readonly"] is True
    assert resolve(document, mode["params"]["properties"]["mode"])["enum"] == ["heat", "off"]
    assert resolve(document, mode["result"])["enum"] == ["heat", "off"]
    size = document["commands"]["typed.size"]["params"]["properties"]["size"]
    assert size["enum"] == ["s", "m", "l"]


def test_models_and_typeddicts_are_described_by_pydantic(document: dict[str, Any]) -> None:
    order = resolve(document, document["commands"]["typed.order"]["params"]["properties"]["o"])
    assert order["properties"]["quantity"] == {"minimum": 1, "title": "Quantity", "type": "integer"}
    address = resolve(document, document["commands"]["typed.address"]["params"]["properties"]["a"])
    assert address["required"] == ["street", "number"]


def test_variadic_unannotated_and_unresolved_parameters(document: dict[str, Any]) -> None:
    many = document["commands"]["typed.many"]["params"]
    assert many["required"] == ["first"]
    assert "additionalProperties" not in many  # **named takes any keyword
    assert many["properties"]["values"]["items"] == {"type": "integer"}
    assert many["properties"]["values"]["description"].startswith("*values")
    assert many["properties"]["named"]["additionalProperties"] == {"type": "number"}
    loose = document["commands"]["typed.loose"]["params"]["properties"]
    assert "type" not in loose["anything"]  # anything goes
    unresolved = document["commands"]["typed.unresolved"]["params"]["properties"]["thing"]
    assert unresolved["description"].startswith("not checked: 'NoSuchType' cannot be resolved")


def test_results_are_described_for_serialization(document: dict[str, Any]) -> None:
    assert document["commands"]["typed.point"]["result"] == {"$ref": "#/$defs/Point"}
    assert document["commands"]["typed.size"]["result"] == {"type": "string"}
    assert document["commands"]["typed.loose"]["result"] == {}


def test_declared_and_inferred_event_payloads(document: dict[str, Any]) -> None:
    moved = document["events"]["typed.moved"]
    assert (moved["declared"], moved["type"]) == (True, "Moved")
    payload = resolve(document, moved["payload"])
    assert payload["required"] == ["point"]
    assert payload["properties"]["point"] == {"$ref": "#/$defs/Point"}
    inferred = document["events"]["typed.inferred"]
    assert inferred["declared"] is False
    assert inferred["payload"]["required"] == ["size"]
    assert inferred["payload"]["properties"]["size"]["enum"] == ["s", "m", "l"]
    assert inferred["payload"]["properties"]["count"]["default"] == 1


def test_an_event_with_several_listeners_takes_what_all_of_them_take() -> None:
    with Bus(tracing=False) as bus:
        bus.register_listener("ping", lambda count: None)
        bus.register_listener("ping", lambda count, *, loud=False: None)
        bus.register_listener("*", lambda *args, **kwargs: None)  # describes no one event
        document = json_schema(bus)
    payload = document["events"]["ping"]["payload"]
    assert len(payload["allOf"]) == 2
    assert all("additionalProperties" not in s for s in payload["allOf"])
    assert set(document["events"]) == {"ping"}


def test_one_command_or_event_by_name(served: Bus) -> None:
    one = json_schema(served, "typed.point")
    assert list(one["commands"]) == ["typed.point"]
    assert one["events"] == {}
    assert set(one["$defs"]) == {"Point"}
    with pytest.raises(LookupError, match=r"no command or event named 'typed\.nothing'"):
        json_schema(served, "typed.nothing")


def test_every_sample_service_exports() -> None:
    with Bus(name="demo", tracing=False) as bus:
        sample_services.start(bus, tick_interval=3600.0)
        document = json_schema(bus)
        spec = asyncapi(bus)
    light = document["$defs"]["LightState"]
    assert light["required"] == ["room", "on", "brightness"]
    assert document["commands"]["lights.get"]["result"] == {"$ref": "#/$defs/LightState"}
    mode = document["commands"]["thermostat.set_mode"]["params"]["properties"]["mode"]
    assert resolve(document, mode)["enum"] == ["heat", "off"]
    assert document["events"]["lights.changed"]["declared"] is True
    assert document["events"]["thermostat.changed"]["declared"] is True
    assert "execute.lights.turn_on" in spec["operations"]


# -- the control method ------------------------------------------------------------------------


def test_the_schema_method_gives_the_same_documents(served: Bus, client: LineClient) -> None:
    assert client.result("schema") == json_schema(served)
    assert client.result("schema", {"format": "jsonschema"}) == json_schema(served)
    assert client.result("schema", {"format": "asyncapi"}) == asyncapi(served)
    assert client.result("schema", {"name": "typed.moved"}) == json_schema(served, "typed.moved")


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"format": "yaml"}, "format", "'format' must be jsonschema or asyncapi, not 'yaml'"),
        ({"name": "typed.nothing"}, "name", "no command or event named 'typed.nothing'"),
        ({"name": 3}, "name", "'name' must be a non-empty string"),
        ({"format": "asyncapi", "name": "typed.point"}, "name", "describes the whole bus"),
        ({"depth": 1}, "depth", "unknown param 'depth'"),
    ],
)
def test_the_schema_method_refuses_bad_params(
    client: LineClient, params: dict[str, Any], param: str, message: str
) -> None:
    error = client.error("schema", params)
    assert error["code"] == ErrorCode.INVALID_PARAMS
    assert error["data"]["param"] == param
    assert message in error["message"]


@dataclass
class Tolerance:
    """A dataclass whose default JSON cannot hold."""

    limit: float = float("nan")


def test_defaults_json_cannot_hold_do_not_break_the_reply(runtime_dir: Path) -> None:
    def measure(t: Tolerance, scale: float = float("inf"), marker: object = object()) -> None:
        return None

    with Bus(name="odd", control=True, tracing=False) as bus:
        bus.register_command("measure", measure)
        assert bus.address is not None
        client = LineClient(bus.address)
        try:
            document = client.result("schema")
            client.result("schema", {"format": "asyncapi"})
        finally:
            client.close()
    properties = document["commands"]["measure"]["params"]["properties"]
    assert "default" not in properties["scale"]
    assert "default" not in properties["marker"]
    assert document["$defs"]["Tolerance"]["properties"]["limit"]["default"] == {
        "$repr": "nan",
        "$type": "float",
    }
