"""The registry tables, written once (``busctl.render.columns``) and drawn by every face."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from busctl.render.columns import COMMANDS, LISTENERS, SERVICES, TABLES, Cell, service_state

SNAPSHOT = {
    "services": [
        {
            "name": "lights",
            "state": "running",
            "activity": "idle",
            "threads": [{"name": "bus:home/lights"}],
            "mailbox": 90,
            "mailbox_size": 100,
            "handled": 12,
            "failed": 0,
            "rejected": 1,
            "dropped": 2,
        },
        {
            "name": "db",
            "state": "failed",
            "error": "ConnectionError: " + "x" * 80,
            "activity": "idle",
            "threads": [],
            "mailbox": 0,
            "mailbox_size": 100,
            "handled": 0,
            "failed": 1,
        },
    ],
    "commands": [
        {
            "name": "lights.get",
            "owner": "lights",
            "signature": "(room: str) -> dict[str, int]",
            "calls": 3,
            "errors": 1,
            "p50_ms": 0.42,
            "p99_ms": None,
        }
    ],
    "listeners": [
        {"pattern": "b", "owner": "x", "handler": "X.b", "order": 2, "deliveries": 0, "errors": 0},
        {"pattern": "a", "owner": "x", "handler": "X.a", "order": 1, "deliveries": 5, "errors": 0},
    ],
}


def texts(cells: tuple[Cell, ...]) -> list[str]:
    return [cell.text for cell in cells]


def test_services_cells_and_tones() -> None:
    (_, _, lights), (_, _, db) = SERVICES.rows(SNAPSHOT)
    assert texts(lights) == [
        "lights",
        "running",
        "idle",
        "bus:home/lights",
        "90/100",
        "12",
        "0",
        "3",
    ]
    assert [cell.tone for cell in lights] == ["strong", "good", "", "", "warn", "", "", "bad"]
    assert db[0].tone == db[1].tone == db[6].tone == "bad"
    assert db[1].text.startswith("failed (ConnectionError: ")
    assert db[1].text.endswith("…)")
    assert len(db[1].text) == len("failed ()") + 60


def test_commands_cells() -> None:
    [(key, entry, cells)] = COMMANDS.rows(SNAPSHOT)
    assert key == "lights.get"
    assert entry is SNAPSHOT["commands"][0]
    assert texts(cells) == [
        "lights.get",
        "lights",
        "",
        "(room: str) -> dict[str, int]",
        "3",
        "1",
        "420 µs",
        "-",
    ]
    assert cells[5].tone == "bad"


def test_commands_say_which_are_read_only_and_which_are_stubbed() -> None:
    snapshot = {
        "commands": [
            {"name": "lights.get", "readonly": True},
            {"name": "lights.turn_on", "stub": {"raises": "ValueError: x"}},
        ]
    }
    (_, _, get), (_, _, turn_on) = COMMANDS.rows(snapshot)
    assert (get[0].text, get[0].tone, get[2].text) == ("lights.get", "strong", "ro")
    assert (turn_on[0].text, turn_on[0].tone, turn_on[2].text) == (
        "lights.turn_on [stubbed]",
        "warn",
        "",
    )


def test_listeners_in_delivery_order() -> None:
    assert [cells[0].text for _, _, cells in LISTENERS.rows(SNAPSHOT)] == ["a", "b"]


@pytest.mark.parametrize(
    "odd",
    [{"services": "?"}, {"services": [1, None, "x"]}, {"services": [{"mailbox": "lots"}]}, {}],
)
def test_what_a_misbehaving_bus_sends_never_crashes_a_table(odd: dict[str, object]) -> None:
    for table in TABLES.values():
        for _, _, cells in table.rows(odd):
            assert all(isinstance(cell.text, str) for cell in cells)


def test_control_characters_are_shown_not_sent() -> None:
    snapshot = {"commands": [{"name": "evil\x1b[2J", "signature": "(x)\n", "calls": 0}]}
    [(_, _, cells)] = COMMANDS.rows(snapshot)
    assert cells[0].text == "evil\\x1b[2J"
    assert cells[3].text == "(x)\\n"


def test_the_cli_and_the_repl_print_the_same_table() -> None:
    from busctl.render.printed import registry_table
    from busctl.repl.views import show_table

    for name, table in TABLES.items():
        printed, shown = io.StringIO(), io.StringIO()
        Console(file=printed, width=200).print(registry_table(table, SNAPSHOT, colour=False))
        show_table(Console(file=shown, width=200), name, SNAPSHOT, colour=False)
        assert printed.getvalue() == shown.getvalue()
        assert printed.getvalue().split()[0] == table.columns[0].header


def test_the_tui_tables_have_the_same_columns() -> None:
    from busctl.tui.tables import CommandsTable, ListenersTable, ServicesTable

    for widget, table in ((ServicesTable, SERVICES), (CommandsTable, COMMANDS)):
        assert [key for key, _ in widget.COLUMNS] == [c.key for c in table.columns]
        assert [label for _, label in widget.COLUMNS] == [c.header.lower() for c in table.columns]
    assert ListenersTable.SPEC is LISTENERS
    assert ServicesTable.FLEX == ("state", "threads")


def test_a_hung_service_says_so() -> None:
    hung = {"state": "running", "threads": [{"name": "t", "hung": True}]}
    assert service_state(hung) == "running (hung)"
    assert SERVICES.cells(hung)[1].tone == "bad"


MERGED = {
    "bus": {"name": "home", "transport": "nats", "processes": 2},
    "processes": [{"id": "a", "label": "vm:1"}, {"id": "b", "label": "vm:2"}],
    "services": [
        {
            **SNAPSHOT["services"][0],
            "instances": [{"process": "vm:1"}, {"process": "vm:2"}],
        }
    ],
    "commands": [{"name": "lights.get", "owner": "lights", "instances": ["vm:1", "vm:2"]}],
    "listeners": [
        {"pattern": "lights.*", "owner": "lights", "order": 0, "process": "vm:2"},
        {"pattern": "lights.*", "owner": "lights", "order": 0, "process": "vm:1"},
    ],
}


def test_a_bus_across_processes_gets_the_tables_that_say_where():
    from busctl.render.columns import ACROSS, across, is_across

    assert is_across(MERGED)
    assert not is_across(SNAPSHOT)
    for table in (SERVICES, COMMANDS, LISTENERS):
        assert across(table, SNAPSHOT) is table
        assert across(table, MERGED) is ACROSS[table.name]
    services = across(SERVICES, MERGED)
    assert [c.header for c in services.columns][:3] == ["NAME", "INSTANCES", "STATE"]
    [(_, _, cells)] = list(services.rows(MERGED))
    assert cells[1].text == "vm:1, vm:2"
    [(_, _, cells)] = list(across(COMMANDS, MERGED).rows(MERGED))
    assert cells[1].text == "vm:1, vm:2"
    # The same listener in two processes is two rows, each saying which.
    rows = list(across(LISTENERS, MERGED).rows(MERGED))
    assert len({key for key, _, _ in rows}) == 2
    assert [cells[1].text for _, _, cells in rows] == ["vm:1", "vm:2"]
