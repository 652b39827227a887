"""The typed contract in process: ``Bus(validate=True)``, declared events, stubs.

By default an in-process call keeps Python's behaviour: the handler gets what
it was given. ``validate=True`` converts and checks as the console's boundary
does. Events declare a payload type (``declare_event``, ``@event_type``, a
service's ``events``).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, TypedDict

import pytest
from pydantic import BaseModel

from bus import Bus, InvalidArgumentError, Service, command, event_type, listener
from bus.testing import capture_events, stub_command, wait_idle
from tests.bus.control.typed_service import Mode, Moved, Order, Point, Typed

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def strict() -> Iterator[Bus]:
    with Bus(name="strict", validate=True, tracing=False) as bus:
        bus.add_service(Typed())
        yield bus


@pytest.fixture
def lax() -> Iterator[Bus]:
    with Bus(name="lax", tracing=False) as bus:
        bus.add_service(Typed())
        yield bus


def run(bus: Bus, name: str, *args: Any, **kwargs: Any) -> Any:
    return bus.execute_command(name, *args, **kwargs).result(timeout=10)


# -- commands -------------------------------------------------------------------------------


def test_by_default_an_in_process_call_is_not_converted(lax: Bus) -> None:
    assert run(lax, "typed.size", "xl") == "xl"  # the Literal is not enforced
    got = run(lax, "typed.generic", n="7")
    assert got["types"]["n"] == "str"
    with pytest.raises(AssertionError):  # the handler got a dict, not a Point
        run(lax, "typed.point", {"x": 1})


def test_validate_converts_in_process_calls(strict: Bus) -> None:
    assert run(strict, "typed.point", {"x": "1"}) == Point(1, 0)
    assert run(strict, "typed.mode", "off") is Mode.OFF
    assert run(strict, "typed.order", {"item": "tea", "quantity": "2"}) == Order(
        item="tea", quantity=2
    )
    got = run(strict, "typed.many", {"x": 1}, "2", flag=1, ratio="0.25")
    assert got["values"] == {
        "first": Point(1, 0),
        "values": (2,),
        "flag": True,
        "named": {"ratio": 0.25},
    }


def test_validate_keeps_instances_that_are_already_right(strict: Bus) -> None:
    point = Point(3, 4)
    assert run(strict, "typed.point", point) is point
    order = Order(item="jam", quantity=1)
    assert run(strict, "typed.order", order) is order


def test_validate_refuses_at_once_and_dispatches_nothing(strict: Bus) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        strict.execute_command("typed.mode", "warm")
    error = caught.value
    assert isinstance(error, TypeError)  # as arguments that do not bind
    assert error.target == "typed.mode"
    ((problem),) = error.problems
    assert (problem.param, problem.expected, problem.value) == ("mode", "Mode", "warm")
    assert str(error) == (
        "typed.mode(mode: Mode) -> Mode: argument 'mode' must be Mode, not 'warm' "
        "(Input should be 'heat' or 'off')"
    )
    wait_idle(strict)
    assert strict.inspect()["totals"]["handled"] == 0


def test_validate_names_a_missing_field_and_a_nested_path(strict: Bus) -> None:
    with pytest.raises(InvalidArgumentError, match=r"argument 'p' must be Point: p\.x is missing"):
        strict.execute_command("typed.point", {"y": 1})
    with pytest.raises(
        InvalidArgumentError,
        match=r"argument 'points' must be list\[Point\] \| None: points\[1\]\.x",
    ):
        strict.execute_command("typed.generic", points=[{"x": 1}, {"x": "b"}])


def test_arguments_that_do_not_bind_are_a_plain_type_error_first(strict: Bus) -> None:
    with pytest.raises(TypeError, match="too many positional") as caught:
        strict.execute_command("typed.mode", "heat", "off")
    assert not isinstance(caught.value, InvalidArgumentError)


def test_unannotated_and_unresolved_parameters_pass_through(strict: Bus) -> None:
    marker = object()
    assert run(strict, "typed.loose", marker, n="3")["values"] == {"anything": marker, "n": 3}
    assert run(strict, "typed.unresolved", marker)["values"]["thing"] is marker
    handler = strict.router.command("typed.unresolved")
    contract = handler.binder.contract()
    assert contract is not None
    assert contract.notes["thing"].startswith("not checked: 'NoSuchType' cannot be resolved")


def test_the_error_pickles_with_its_problems() -> None:
    with Bus(validate=True, tracing=False) as bus:
        bus.add_service(Typed())
        with pytest.raises(InvalidArgumentError) as caught:
            bus.execute_command("typed.size", "xl")
    again = pickle.loads(pickle.dumps(caught.value))
    assert str(again) == str(caught.value)
    assert again.problems == caught.value.problems


def test_a_handler_without_a_signature_takes_anything() -> None:
    with Bus(validate=True, tracing=False) as bus:
        bus.register_command("max", max)
        assert bus.execute_command("max", 1, 3).result(timeout=5) == 3


def test_a_parameter_pydantic_cannot_use_is_noted_and_not_checked() -> None:
    def takes(o: int, u: int, n: int) -> None:
        return None

    takes.__annotations__["o"] = Final[int]  # not a type pydantic takes for a value
    takes.__annotations__["u"] = "Undefined"  # names nothing in this module
    with Bus(validate=True, tracing=False) as bus:
        bus.register_command("takes", takes)
        assert bus.execute_command("takes", "anything", [1], "4").result(timeout=5) is None
        with pytest.raises(InvalidArgumentError, match="argument 'n' must be int"):
            bus.execute_command("takes", "anything", [1], "four")
        contract = bus.router.command("takes").binder.contract()
        assert contract is not None
        assert contract.checked == {"n"}
        assert contract.notes["o"].startswith("not checked: pydantic cannot use")
        assert contract.notes["u"].startswith("not checked: 'Undefined' cannot be resolved")


# -- events -----------------------------------------------------------------------------------


class Hear(Service):
    name = "hear"

    def on_start(self) -> None:
        self.got: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    @listener("typed.moved")
    def moved(self, *args: Any, **kwargs: Any) -> None:
        self.got.append((args, kwargs))


def test_a_service_declares_its_events(lax: Bus) -> None:
    contract = lax.events.get("typed.moved")
    assert contract is not None
    assert contract.payload is Moved
    assert contract.fields == ("point", "mode")


def test_validate_converts_a_declared_event_at_fire(strict: Bus) -> None:
    hear = Hear()
    strict.add_service(hear)
    with capture_events(strict, "typed.*") as events:
        strict.fire_event("typed.moved", point={"x": "2"}, mode="off")
        strict.fire_event("typed.moved", {"x": 5})
    wait_idle(strict)
    assert hear.got == [((), {"point": Point(2, 0), "mode": Mode.OFF}), ((Point(5, 0),), {})]
    assert events.named("typed.moved")[0].kwargs == {"point": Point(2, 0), "mode": Mode.OFF}


def test_validate_refuses_a_wrong_event_payload_at_once(strict: Bus) -> None:
    hear = Hear()
    strict.add_service(hear)
    with pytest.raises(InvalidArgumentError, match="argument 'mode' must be Mode"):
        strict.fire_event("typed.moved", point={"x": 1}, mode="warm")
    with pytest.raises(InvalidArgumentError, match="no such field"):
        strict.fire_counted("typed.moved", point={"x": 1}, speed=2)
    wait_idle(strict)
    assert hear.got == []


def test_without_validate_an_event_is_delivered_as_fired(lax: Bus) -> None:
    hear = Hear()
    lax.add_service(hear)
    lax.fire_event("typed.moved", point={"x": "2"}, mode="warm")
    wait_idle(lax)
    assert hear.got == [((), {"point": {"x": "2"}, "mode": "warm"})]


def test_undeclared_events_are_not_converted(strict: Bus) -> None:
    with capture_events(strict, "other") as events:
        strict.fire_event("other", {"x": "1"})
    assert events.named("other")[0].args == ({"x": "1"},)


@event_type("shapes.added")
class ShapeAdded(BaseModel):
    kind: str
    sides: int


class ShapeCounts(TypedDict):
    kind: str
    count: int


@dataclass
class Unmarked:
    kind: str


def test_declare_event_takes_models_typeddicts_and_dataclasses() -> None:
    with Bus(validate=True, tracing=False) as bus:
        bus.declare_event(ShapeAdded)
        bus.declare_event("shapes.counted", ShapeCounts)
        bus.declare_event("shapes.unmarked", Unmarked)
        bus.declare_event(ShapeAdded)  # again, the same type: nothing happens
        with capture_events(bus) as events:
            bus.fire_event("shapes.added", kind="square", sides="4")
            bus.fire_event("shapes.counted", "square", count="2")
            bus.fire_event("shapes.unmarked", kind="x")
        assert [(e.args, e.kwargs) for e in events] == [
            ((), {"kind": "square", "sides": 4}),
            (("square",), {"count": 2}),
            ((), {"kind": "x"}),
        ]
        with pytest.raises(InvalidArgumentError, match="count"):
            bus.fire_event("shapes.counted", kind="square")


def test_declare_event_refuses_what_cannot_be_a_payload() -> None:
    with Bus(tracing=False) as bus:
        with pytest.raises(TypeError, match="must be a dataclass, a TypedDict or a pydantic model"):
            bus.declare_event("numbers", int)
        with pytest.raises(TypeError, match="has no event name"):
            bus.declare_event(Unmarked)
        with pytest.raises(TypeError, match="needs the payload type"):
            bus.declare_event("shapes.unmarked")
        with pytest.raises(ValueError, match="invalid event name"):
            bus.declare_event("no spaces", Unmarked)
        bus.declare_event("shapes.unmarked", Unmarked)
        with pytest.raises(ValueError, match="declared with Unmarked already"):
            bus.declare_event("shapes.unmarked", ShapeCounts)
    with pytest.raises(TypeError, match="must be a dataclass"):
        event_type("numbers")(int)


def test_a_service_may_map_names_to_types_and_must_mark_listed_ones() -> None:
    class Mapped(Service):
        name = "mapped"
        events = {"shapes.unmarked": Unmarked}

    class Listed(Service):
        name = "listed"
        events = (Unmarked,)

    with Bus(tracing=False) as bus:
        bus.add_service(Mapped())
        assert bus.events.get("shapes.unmarked") is not None
        with pytest.raises(TypeError, match=r"Unmarked.*has no event name"):
            bus.add_service(Listed())


# -- stubs --------------------------------------------------------------------------------------


class Real(Service):
    name = "real"

    @command("real.set", readonly=True)
    def set(self, mode: Mode, level: int = 1) -> str:
        """The real thing."""
        return "real"


def test_a_stub_keeps_the_signature_and_refuses_what_the_real_command_would() -> None:
    with Bus(validate=True, tracing=False) as bus:
        bus.add_service(Real())
        with stub_command(bus, "real.set", return_value="stub") as stub:
            assert bus.execute_command("real.set", "heat", level="2").result(timeout=5) == "stub"
            assert stub.calls == [((Mode.HEAT,), {"level": 2})]
            with pytest.raises(TypeError, match=r"real\.set\(mode: Mode, level: int = 1\) -> str"):
                bus.execute_command("real.set")
            with pytest.raises(InvalidArgumentError, match="argument 'mode' must be Mode"):
                bus.execute_command("real.set", "warm")
            (described,) = bus.inspect()["commands"]
            assert described["signature"] == "(mode: Mode, level: int = 1) -> str"
            assert (described["readonly"], described["doc"]) == (True, "The real thing.")
        assert bus.execute_command("real.set", "off").result(timeout=5) == "real"
        assert len(stub.calls) == 1


def test_a_stub_of_a_command_that_does_not_exist_takes_anything() -> None:
    with (
        Bus(validate=True, tracing=False) as bus,
        stub_command(bus, "nothing", return_value=1) as stub,
    ):
        assert bus.execute_command("nothing", 1, b=2).result(timeout=5) == 1
        assert stub.calls == [((1,), {"b": 2})]


# -- the public helpers (bus.schema) --------------------------------------------------------------


def test_the_public_helpers_convert_and_encode_as_the_console_does(lax: Bus) -> None:
    from bus import CommandNotFoundError
    from bus.schema import convert_call, convert_event, to_json

    args, kwargs = convert_call(lax, "typed.point", [{"x": "1"}], {})
    assert (args, kwargs) == ((Point(1, 0),), {})
    with pytest.raises(InvalidArgumentError, match="argument 'mode'"):
        convert_call(lax, "typed.mode", ["warm"], {})
    with pytest.raises(TypeError, match="too many positional"):
        convert_call(lax, "typed.mode", ["heat", "off"], {})
    with pytest.raises(CommandNotFoundError):
        convert_call(lax, "typed.nothing", [], {})
    assert convert_event(lax, "typed.moved", [], {"point": {"x": 2}}) == ((), {"point": Point(2)})
    assert convert_event(lax, "undeclared", ["as", "is"], {}) == (("as", "is"), {})
    assert to_json(run(lax, "typed.point", Point(7, 8))) == ({"x": 7, "y": 8}, False)
    assert to_json(object())[1] is True
