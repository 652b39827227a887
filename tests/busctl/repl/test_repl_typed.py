"""The REPL and the typed contract: enum and Literal values completed, bad values in one line.

A real bus with the sample services and ``Counted`` on a real control socket;
the REPL runs on a thread, typed into through prompt-toolkit's pipe (the
``Session`` of ``test_repl``), and completion is asked as the prompt asks it.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from bus import Bus, Service, command
from busctl._client import Client, RemoteError
from busctl.repl.session import Repl
from tests.busctl.counted_services import Counted
from tests.busctl.repl.test_repl import WAIT, LocalClient, Session, session
from tests.busctl.served_buses import counted_bus

__all__ = ["session"]  # test_repl's fixture, on this module's client

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def home() -> Iterator[tuple[Bus, Counted]]:
    with counted_bus("home", samples=True, releaser=False) as served:
        yield served


@pytest.fixture
def client(home: tuple[Bus, Counted]) -> Iterator[Client]:
    """``session``'s client: attached to ``home``."""
    with Client.connect(str(home[0].address)) as attached:
        yield attached


def offered(repl: Repl, text: str) -> list[tuple[str, str]]:
    """What Tab offers after ``text``: each completion and its meta."""
    found = repl.completer.get_completions(Document(text), CompleteEvent())
    return [(c.text, c.display_meta_text) for c in found]


def test_enum_values_are_completed_in_both_forms_with_the_type(session: Session) -> None:
    repl = session.repl
    assert offered(repl, "thermostat.set_mode office mode=") == [("heat", "Mode"), ("off", "Mode")]
    assert offered(repl, "thermostat.set_mode office mode=o") == [("off", "Mode")]
    assert offered(repl, "call thermostat.set_mode office mode=h") == [("heat", "Mode")]
    # Positionally: the argument being typed is `mode`; the keyword left is offered too.
    assert offered(repl, "thermostat.set_mode office ") == [
        ("heat", "Mode"),
        ("off", "Mode"),
        ("mode=", "Mode: heat | off"),
    ]
    assert offered(repl, "thermostat.set_mode office h") == [("heat", "Mode")]
    # The NAME(...) form, bare or quoted.
    assert offered(repl, "thermostat.set_mode(office, mode=") == [("heat", "Mode"), ("off", "Mode")]
    assert offered(repl, 'thermostat.set_mode("office", mode="h') == [('"heat"', "Mode")]
    assert offered(repl, "thermostat.set_mode(office, o") == [("off", "Mode")]
    # A parameter with no choices offers none; a value already whole, nothing.
    assert offered(repl, "thermostat.set_mode zone=") == []
    assert offered(repl, "thermostat.set_mode office mode=heat") == []


def test_literal_values_and_event_payloads_are_completed(session: Session) -> None:
    repl = session.repl
    literal = '"s" | "m" | "l"'
    assert offered(repl, "counted.size ") == [
        ("s", literal),
        ("m", literal),
        ("l", literal),
        ("note=", "string | null = null"),
        ("size=", literal),
    ]
    assert offered(repl, "counted.size size='") == [("'s'", literal), ("'m'", literal),
                                                     ("'l'", literal)]  # fmt: skip
    # A declared event: its fields by name, then the enum's values.
    assert offered(repl, "emit counted.changed ") == [
        ("level=", "integer"),
        ("mode=", "Mode: heat | off | away = heat"),
        ("zone=", "string"),
    ]
    assert offered(repl, "emit counted.changed hall 3 a") == [("away", "Mode")]
    assert offered(repl, "emit counted.changed(zone=hall, mode=") == [
        ("heat", "Mode"),
        ("off", "Mode"),
        ("away", "Mode"),
    ]


def test_tab_completes_an_enum_value_at_the_prompt(
    session: Session, home: tuple[Bus, Counted]
) -> None:
    buffer = session.repl.session.default_buffer
    typed: queue.Queue[str] = queue.Queue()
    shown: queue.Queue[int] = queue.Queue()
    buffer.on_text_changed += lambda changed: typed.put(changed.text)
    buffer.on_completions_changed += lambda changed: shown.put(
        len(changed.complete_state.completions) if changed.complete_state else 0
    )
    session.type("counted.set_mode hall mode=aw")
    while shown.get(timeout=WAIT) == 0:
        pass
    session.type("\t")
    while typed.get(timeout=WAIT) != "counted.set_mode hall mode=away":
        pass
    assert '"mode": "away"' in session.line("", "}")
    assert home[1].calls == 1


def test_a_bad_value_is_one_line_and_the_session_goes_on(
    session: Session, home: tuple[Bus, Counted]
) -> None:
    bus, counted = home
    start = len(session.out.getvalue())
    session.type("counted.set_mode hall warm\r")
    end = session.out.wait_for("'away')", after=start)
    text = session.out.getvalue()[start:end]
    assert text == (
        "error: counted.set_mode(zone: str, mode: Mode, level: int = 1) -> Change: "
        "argument 'mode' must be Mode, not 'warm' (Input should be 'heat', 'off' or 'away')"
    )
    assert '"Hello, Ida!"' in session.line("say_hello Ida", 'Ida!"')
    emitted = session.line("emit counted.changed zone=hall level=loud", "'loud'")
    assert emitted.splitlines()[-1].startswith("error: counted.changed")
    assert "argument 'level' must be int, not 'loud'" in emitted
    assert bus.wait_idle(5)
    assert (counted.calls, counted.heard) == (0, 0)
    assert session.finish() == 0


class Later(Service):
    """A service added while the REPL runs."""

    name = "later"

    @command("later.pick")
    def pick(self, colour: Literal["red", "green"], shade: bool = False) -> str:
        return colour


def test_the_schema_follows_the_bus(session: Session, home: tuple[Bus, Counted]) -> None:
    bus, _ = home
    bus.add_service(Later())
    # A fresh inspect shows a new name: the schema is asked for again, without
    # waiting, before the next prompt. Each line below is a prompt; the reply
    # comes within a few of them.
    for _ in range(500):
        session.line("commands", "later.pick")
        if offered(session.repl, "later.pick colour="):
            break
    assert offered(session.repl, "later.pick colour=") == [
        ("red", '"red" | "green"'),
        ("green", '"red" | "green"'),
    ]


class OlderClient(LocalClient):
    """A bus from before the typed contract: no ``schema`` method."""

    def _answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "schema":
            raise RemoteError(-32601, "unknown method 'schema'", {"methods": []})
        return super()._answer(method, params)

    def request_async(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if method == "schema":
            from concurrent.futures import Future

            future: Future[Any] = Future()
            future.set_exception(RemoteError(-32601, "unknown method 'schema'", {}))
            return future
        return super().request_async(method, params)


def test_a_bus_without_a_schema_still_completes_names(home: tuple[Bus, Counted]) -> None:
    running = Session(OlderClient(home[0]))
    try:
        assert offered(running.repl, "lights.turn_on ") == [
            ("brightness=", "int = 100"),
            ("room=", "str"),
        ]
        assert offered(running.repl, "thermostat.set_mode office mode=") == []
    finally:
        assert running.finish() == 0
