"""The typed contract at the command line: ``busctl schema``; ``call`` and ``emit`` refusing.

A real bus in this process with the sample services and ``Counted`` (whose
handlers count what reaches them), served on a real control socket; the
verbs run with click's ``CliRunner`` against it, and ``schema --embedded``
and the AsyncAPI file also as a real ``busctl`` subprocess. The written
AsyncAPI document is read by the official parser (``@asyncapi/parser``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bus import Bus
from busctl._exit import ExitStatus
from busctl.cli import cli
from tests.bus.control.test_schema_asyncapi import parse, parser
from tests.busctl.counted_services import Counted
from tests.busctl.programs import attach_to, run_busctl
from tests.busctl.served_buses import counted_bus

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(60)

__all__ = ["parser"]  # the AsyncAPI parser's fixture, used here too


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Bus, Counted]]:
    with counted_bus("typed", samples=True) as (bus, counted):
        assert bus.address is not None
        attach_to(monkeypatch, bus.address.parent)
        yield bus, counted


@pytest.fixture
def busctl(served: tuple[Bus, Counted]) -> Callable[..., Result]:
    address = str(served[0].address)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, [args[0], "--bus", address, *args[1:]])

    return invoke


# -- busctl call and emit ---------------------------------------------------------------


def test_call_refuses_a_bad_value_with_exit_2_and_dispatches_nothing(
    busctl: Callable[..., Result], served: tuple[Bus, Counted]
) -> None:
    bus, counted = served
    result = busctl("call", "counted.set_mode", "hall", "warm")
    assert result.exit_code == ExitStatus.USAGE == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    # The server's message: the parameter, the expected type and the value.
    assert lines[0].startswith("error: counted.set_mode(zone: str, mode: Mode, level: int = 1)")
    assert "argument 'mode' must be Mode, not 'warm'" in lines[0]
    assert "'heat', 'off' or 'away'" in lines[0]
    assert result.stdout == ""
    assert bus.wait_idle(5)
    assert counted.calls == 0
    entry = next(c for c in bus.inspect()["commands"] if c["name"] == "counted.set_mode")
    assert entry["calls"] == 0


def test_call_names_every_bad_argument_at_once(
    busctl: Callable[..., Result], served: tuple[Bus, Counted]
) -> None:
    result = busctl("call", "counted.set_mode", "hall", "mode=warm", "level=high")
    assert result.exit_code == 2
    assert "argument 'mode' must be Mode" in result.stderr
    assert "argument 'level' must be int, not 'high'" in result.stderr
    assert served[1].calls == 0


def test_call_converts_and_prints_a_typed_result(
    busctl: Callable[..., Result], served: tuple[Bus, Counted]
) -> None:
    result = busctl("call", "--json", "counted.set_mode", "hall", "mode=away", "level=3")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "zone": "hall",
        "mode": "away",
        "at": "2026-03-01T12:30:00Z",
    }
    assert served[1].calls == 1


def test_emit_of_a_declared_event_with_a_bad_payload_exits_2_and_fires_nothing(
    busctl: Callable[..., Result], served: tuple[Bus, Counted]
) -> None:
    bus, counted = served
    result = busctl("emit", "counted.changed", "zone=hall", "level=loud")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert "counted.changed" in result.stderr
    assert "argument 'level' must be int, not 'loud'" in result.stderr
    missing = busctl("emit", "counted.changed", "zone=hall")
    assert missing.exit_code == 2
    assert "level" in missing.stderr
    assert bus.wait_idle(5)
    assert counted.heard == 0
    good = busctl("emit", "counted.changed", "zone=hall", "level=2", "mode=off")
    assert good.exit_code == 0, good.output
    assert "fired counted.changed to 2 listeners" in good.stdout  # and the notifier's *.changed
    assert bus.wait_idle(5)
    assert counted.heard == 1


# -- busctl schema ----------------------------------------------------------------------


def test_schema_prints_every_command_and_event(busctl: Callable[..., Result]) -> None:
    result = busctl("schema")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"say_hello", "thermostat.set_mode", "counted.set_mode"} <= set(document["commands"])
    assert {"lights.changed", "counted.changed"} <= set(document["events"])
    set_mode = document["commands"]["counted.set_mode"]
    assert set_mode["params"]["required"] == ["zone", "mode"]
    assert set_mode["params"]["properties"]["level"]["default"] == 1
    mode_ref = set_mode["params"]["properties"]["mode"]["$ref"]
    assert document["$defs"][mode_ref.rsplit("/", 1)[-1]]["enum"] == ["heat", "off", "away"]
    assert set_mode["result"]["$ref"].endswith("Change")
    assert document["events"]["counted.changed"]["declared"] is True


def test_schema_of_one_name(busctl: Callable[..., Result]) -> None:
    result = busctl("schema", "counted.size")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document["commands"]) == ["counted.size"]
    size = document["commands"]["counted.size"]["params"]["properties"]["size"]
    assert size["enum"] == ["s", "m", "l"]
    event = json.loads(busctl("schema", "counted.changed").stdout)
    assert list(event["events"]) == ["counted.changed"]
    unknown = busctl("schema", "counted.nope")
    assert unknown.exit_code == ExitStatus.NOT_FOUND
    assert unknown.stderr == "error: no command or event named 'counted.nope' on bus typed\n"
    whole = busctl("schema", "counted.size", "--format", "asyncapi")
    assert whole.exit_code == 2
    assert "an AsyncAPI document describes the whole bus" in whole.stderr


def test_schema_writes_an_asyncapi_file_the_official_parser_reads(
    busctl: Callable[..., Result], parser: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bus.asyncapi.json"
    out.write_text("an older document\n")
    result = busctl("schema", "--format", "asyncapi", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"to {out}" in result.stderr
    assert "AsyncAPI 3.0 document of bus typed" in result.stderr
    document = json.loads(out.read_text())
    assert document["asyncapi"] == "3.0.0"
    assert "execute.counted.set_mode" in document["operations"]
    assert "event.counted.changed" in document["channels"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bus.asyncapi.json"]  # no temp left
    (tmp_path / "parsed").mkdir()
    report = parse(parser, document, tmp_path / "parsed")
    assert report["parsed"]


def test_schema_to_a_bad_path_is_one_line_and_exit_2(
    busctl: Callable[..., Result], tmp_path: Path
) -> None:
    for where, why in [
        (tmp_path / "missing" / "x.json", f"no directory {tmp_path / 'missing'}"),
        (tmp_path, "it is a directory"),
    ]:
        result = busctl("schema", "-o", str(where))
        assert result.exit_code == 2, result.output
        assert result.stderr == f"error: cannot write {where}: {why}\n"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: nothing to refuse
            return
        result = busctl("schema", "-o", str(locked / "x.json"))
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: cannot write {locked / 'x.json'}: ")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_schema_embedded_as_a_subprocess_with_no_bus_running(
    parser: Path, tmp_path: Path, busctl_env: Callable[..., dict[str, str]]
) -> None:
    runtime = Path(tempfile.mkdtemp(prefix="btc", dir="/tmp"))
    try:
        out = tmp_path / "sample.asyncapi.json"
        env = busctl_env(runtime)
        done = run_busctl(env, "schema", "--embedded", "--format", "asyncapi", "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert done.stderr.startswith("wrote the AsyncAPI 3.0 document of bus sample (14 commands")
        document = json.loads(out.read_text())
        assert "execute.thermostat.set_mode" in document["operations"]
        (tmp_path / "parsed").mkdir()
        parse(parser, document, tmp_path / "parsed")
        plain = run_busctl(env, "schema", "--embedded", "thermostat.set_mode")
        assert plain.returncode == 0, plain.stderr
        assert list(json.loads(plain.stdout)["commands"]) == ["thermostat.set_mode"]
        # Without --embedded, schema attaches as every verb does: no bus, exit 3.
        none = run_busctl(env, "schema")
        assert none.returncode == ExitStatus.NO_BUS
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_schema_embedded_and_bus_together_is_a_usage_error(busctl: Callable[..., Result]) -> None:
    result = busctl("schema", "--embedded")
    assert result.exit_code == 2
    assert result.stderr == "error: --embedded and --bus name two buses: give one\n"


# -- busctl introspect --------------------------------------------------------------------


def tables(text: str) -> dict[str, dict[str, list[str]]]:
    """Each table of ``introspect``'s output by its first heading: row name -> the other cells."""
    found: dict[str, dict[str, list[str]]] = {}
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or ":" in lines[0].split()[0]:
            continue  # the name: value lines, or the docstring
        head = lines[0].split("  ")[0]
        found[head] = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    return found


def test_introspect_shows_types_choices_defaults_and_the_result(
    busctl: Callable[..., Result],
) -> None:
    result = busctl("introspect", "counted.set_mode")
    assert result.exit_code == 0, result.output
    assert "result:    Change" in result.stdout
    shown = tables(result.stdout)
    params = shown["PARAMETER"]
    assert params["zone"] == ["positional_or_keyword", "string", "-", "(required)"]
    assert params["mode"] == ["positional_or_keyword", "Mode", "heat,", "off,", "away",
                              "(required)"]  # fmt: skip
    assert params["level"] == ["positional_or_keyword", "integer", "-", "1"]
    assert shown["RESULT Change"]["at"] == ["string", "(date-time)", "-"]
    assert shown["RESULT Change"]["mode"] == ["Mode", "heat,", "off,", "away"]
    size = tables(busctl("introspect", "counted.size").stdout)["PARAMETER"]
    assert size["size"] == ["positional_or_keyword", '"s"', "|", '"m"', "|", '"l"', "s,", "m,",
                            "l", "(required)"]  # fmt: skip
    assert size["note"] == ["positional_or_keyword", "string", "|", "null", "-", "null"]
    data = json.loads(busctl("introspect", "--json", "counted.set_mode").stdout)
    fields = {f["name"]: f for f in data["contract"]["fields"]}
    assert fields["mode"]["choices"] == ["heat", "off", "away"]
    assert fields["level"]["default"] == 1
    assert "default" not in fields["zone"]
    assert data["contract"]["result"] == "Change"


def test_introspect_an_event_shows_its_declared_or_inferred_payload(
    busctl: Callable[..., Result],
) -> None:
    declared = busctl("introspect", "counted.changed")
    assert declared.exit_code == 0, declared.output
    assert "payload:      Changed (declared)" in declared.stdout
    assert "other fields: refused" in declared.stdout
    fields = tables(declared.stdout)["FIELD"]
    assert fields["level"] == ["integer", "-", "(required)"]
    assert fields["mode"] == ["Mode", "heat,", "off,", "away", "heat"]
    inferred = busctl("introspect", "motion.detected")
    assert inferred.exit_code == 0, inferred.output
    assert "payload:      inferred from 1 listener of this exact name" in inferred.stdout
    assert tables(inferred.stdout)["FIELD"]["room"] == ["string", "-", "(required)"]
    data = json.loads(busctl("introspect", "--json", "counted.changed").stdout)
    assert data["contract"]["declared"] is True
    assert data["contract"]["payload_type"] == "Changed"
    assert [f["name"] for f in data["contract"]["fields"]] == ["zone", "level", "mode"]
    nothing = busctl("introspect", "nothing.at_all")
    assert nothing.exit_code == ExitStatus.NOT_FOUND
    assert nothing.stderr.startswith("error: no command or event named 'nothing.at_all'")
