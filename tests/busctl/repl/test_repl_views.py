"""The REPL's printed pieces without a bus: error lines, the toolbar, completion edge cases."""

from __future__ import annotations

import io

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from rich.console import Console

from busctl._client import RemoteError
from busctl.repl.complete import Registry, ReplCompleter, pattern_matches
from busctl.repl.verbs import VERBS
from busctl.repl.views import error_line, show_error, show_result, toolbar

pytestmark = pytest.mark.timeout(30)

SNAPSHOT = {
    "commands": [
        {
            "name": "lights.turn_on",
            "signature": "(room: str, brightness: int = 100) -> LightState",
            "doc": "Turn a light on.\n\nMore words.",
            "params": [
                {"name": "room", "kind": "positional_or_keyword", "annotation": "str"},
                {
                    "name": "brightness",
                    "kind": "positional_or_keyword",
                    "annotation": "int",
                    "default": "100",
                    "required": False,
                },
            ],
        },
        {
            "name": "odd",
            "signature": "(a, /, *rest, flag: bool = False)",
            "params": [
                {"name": "a", "kind": "positional_only"},
                {"name": "rest", "kind": "var_positional"},
                {"name": "flag", "kind": "keyword_only", "required": False, "default": "False"},
            ],
        },
    ],
    "listeners": [
        {"pattern": "lights.*", "params": [{"name": "room", "kind": "positional_or_keyword"}]},
        {"pattern": "*", "params": []},
        {"pattern": "door.opened", "params": [{"name": "door", "kind": "keyword_only"}]},
    ],
}


@pytest.fixture
def completer() -> ReplCompleter:
    registry = Registry()
    assert registry.update(SNAPSHOT)
    assert not registry.update(SNAPSHOT)  # the same names: nothing changed
    return ReplCompleter(registry, VERBS)


def complete(completer: ReplCompleter, text: str) -> list[str]:
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_only_keyword_capable_parameters_are_offered(completer: ReplCompleter) -> None:
    assert complete(completer, "odd ") == ["flag="]
    assert complete(completer, "odd(1, ") == ["flag="]
    assert complete(completer, "lights.turn_on room=hall ") == ["brightness="]
    assert complete(completer, "lights.turn_on brightness=") == []  # a value is being typed


def test_event_names_and_their_listeners_parameters(completer: ReplCompleter) -> None:
    assert complete(completer, "emit ") == ["door.opened", "lights."]
    assert complete(completer, "emit door.opened ") == ["door="]
    assert complete(completer, "emit lights.on ") == ["room="]
    completer.registry.saw_event("lights.on")
    assert complete(completer, "emit lights.") == ["lights.on"]
    assert "lights.*" in complete(completer, "monitor l")
    assert complete(completer, "verbose o") == ["off", "on"]


def test_pattern_matching() -> None:
    assert pattern_matches("lights.*", "lights.kitchen.on")
    assert pattern_matches("*", "anything")
    assert pattern_matches("*.changed", "thermostat.changed")
    assert not pattern_matches("lights.*", "light.on")
    assert not pattern_matches("a.b", "a.bc")


def test_error_lines_say_what_to_do() -> None:
    missing = RemoteError(
        -32001,
        "no command named 'ligths.get'",
        {"type": "CommandNotFoundError", "suggestions": ["lights.get"]},
    )
    assert error_line(missing) == (
        "CommandNotFoundError: no command named 'ligths.get'; did you mean lights.get?"
    )
    unbound = RemoteError(
        -32002, "missing a required argument: 'room'", {"type": "TypeError", "signature": "(room)"}
    )
    assert error_line(unbound).endswith("; the signature is (room)")
    late = RemoteError(-32004, "timed out", {"timeout": 30})
    assert error_line(late) == (
        "Timeout: no result within 30 s; the command may still finish on the bus"
    )
    assert error_line(RemoteError(-32603, "oops")) == "oops (error -32603)"


def test_show_error_with_and_without_the_traceback() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, no_color=True)
    failed = RemoteError(-32000, "boom", {"type": "ValueError", "traceback": "Traceback...\n"})
    show_error(console, failed, verbose=False, colour=False)
    assert out.getvalue().splitlines()[0] == "error: ValueError: boom"
    assert "Traceback..." not in out.getvalue()
    show_error(console, failed, verbose=True, colour=False)
    assert "Traceback..." in out.getvalue()


def test_a_lossy_result_is_shown_with_its_markers_and_a_note() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, no_color=True)
    show_result(console, {"$repr": "{1, 2}", "$type": "set"}, colour=False, lossy=True)
    assert out.getvalue() == (
        '{\n  "$repr": "{1, 2}",\n  "$type": "set"\n}\n'
        "(not all of it is JSON: $repr and $unencodable mark what the bus could not send)\n"
    )


def test_toolbar_shows_the_command_being_typed(completer: ReplCompleter) -> None:
    registry = completer.registry
    expected = " lights.turn_on(room: str, brightness: int = 100) -> LightState  Turn a light on."
    assert toolbar("lights.turn_on kit", registry, "home") == expected
    assert toolbar("lights.turn_on(room=", registry, "home") == expected
    assert toolbar("?lights.turn_on", registry, "home") == expected
    assert toolbar("help lights.turn_on", registry, "home") == expected
    assert toolbar("", registry, "home").startswith(" bus home")
