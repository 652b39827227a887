"""busctl steps into a live bus, end to end: a real ``busctl run`` subprocess and its socket.

hold, held, release (as it was and edited), drop, unhold, stub, unstub,
stubs, history; monitor's filters; call @FILE and -; the JSON error object
under --json; the read-only column, the stubbed mark and the status line.
Each verb runs in process with click's ``CliRunner`` against the bus in the
subprocess; a caller the hold makes wait runs on its own thread and client.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from bus.control.protocol import ErrorCode
from busctl._client import Client, RemoteError
from busctl._exit import ExitStatus
from tests.busctl.conftest import BusProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def busctl(busctl: Callable[..., Result]) -> Iterator[Callable[..., Result]]:
    """The CLI's ``busctl``, leaving the shared bus as it found it."""
    yield busctl
    # Each test leaves the shared bus as it found it: no holds, nothing held, no stubs.
    with Client.connect("test") as client:
        for hold in client.request("held").get("holds", []):
            client.request("unhold", {"id": hold["id"]})
        for stub in client.request("stubs").get("stubs", []):
            client.request("unstub", {"name": stub["name"]})


def call_in_background(name: str, *args: Any, **kwargs: Any) -> Future[Any]:
    """Call ``name`` on a thread of its own, as a caller a hold makes wait."""
    out: Future[Any] = Future()

    def run() -> None:
        try:
            with Client.connect("test") as client:
                out.set_result(client.execute(name, list(args), kwargs, timeout=20))
        except BaseException as exc:
            out.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return out


def until_held(
    busctl: Callable[..., Result], count: int, match: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """What ``held --json`` lists that ``match`` picks, once there are ``count`` of them."""
    pause = threading.Event()
    for _ in range(2000):
        result = busctl("held", "--json")
        assert result.exit_code == 0, result.output
        items = [item for item in json.loads(result.stdout)["held"] if match(item)]
        if len(items) >= count:
            return items
        pause.wait(0.01)
    raise AssertionError(f"fewer than {count} held")


def echo_of(value: Any) -> Callable[[dict[str, Any]], bool]:
    """Picks the held calls of ``probe.echo`` whose first argument is ``value``."""
    return lambda item: item["name"] == "probe.echo" and item["args"][:1] == [value]


# -- hold, held, release, drop, unhold --------------------------------------------------


def test_hold_held_release_as_it_was_and_edited(busctl: Callable[..., Result]) -> None:
    result = busctl("hold", "probe.echo", "--calls", "--for", "5m")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"hold \d+: probe\.echo \(calls\), ends in 5 min\n", result.stdout)
    plain = call_in_background("probe.echo", "plain")
    edited = call_in_background("probe.echo", "edited", level=1)
    until_held(busctl, 1, echo_of("plain"))
    [item] = until_held(busctl, 1, echo_of("edited"))
    assert item["kind"] == "call"
    assert item["service"] == "probe"
    assert item["kwargs"] == {"level": 1}
    assert not plain.done()  # the callers wait, as on a slow handler
    assert not edited.done()

    listing = busctl("held")
    assert listing.exit_code == 0, listing.output
    assert "probe.echo" in listing.stdout
    assert '("edited", level=1)' in listing.stdout

    result = busctl("release", str(item["id"]), "level=9")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"released {item['id']} (edited)\n"
    assert edited.result(10) == {"args": ["edited"], "kwargs": {"level": 9}}

    result = busctl("release", "--all")
    assert result.exit_code == 0, result.output
    assert plain.result(10) == {"args": ["plain"], "kwargs": {}}
    assert busctl("held").stdout.endswith("\n\nnothing is held yet\n")

    result = busctl("unhold", "probe.echo")
    assert result.exit_code == 0, result.output
    assert re.match(r"hold \d+ on probe\.echo ended", result.stdout)
    assert json.loads(busctl("held", "--json").stdout) == {"holds": [], "held": []}
    assert busctl("held").stdout == "no holds are set (busctl hold PATTERN sets one)\n"


def test_a_bad_edit_is_refused_and_the_call_stays_held_until_dropped(
    busctl: Callable[..., Result],
) -> None:
    assert busctl("hold", "probe.wait").exit_code == 0
    waiting = call_in_background("probe.wait", 0.01)
    [item] = until_held(busctl, 1, lambda item: item["name"] == "probe.wait")
    result = busctl("release", str(item["id"]), "seconds=[1, 2]")
    assert result.exit_code == ExitStatus.USAGE
    assert "seconds" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert [i["id"] for i in json.loads(busctl("held", "--json").stdout)["held"]] == [item["id"]]

    result = busctl("drop", str(item["id"]))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"dropped {item['id']}\n"
    with pytest.raises(RemoteError) as info:
        waiting.result(10)
    assert info.value.code == ErrorCode.DROPPED
    assert info.value.type == "DroppedByConsoleError"


def test_held_events_never_make_the_firer_wait(busctl: Callable[..., Result]) -> None:
    assert busctl("hold", "probe.ping", "--events", "--service", "other").exit_code == 0
    result = busctl("emit", "probe.ping", "held-one")  # returns at once, held or not
    assert result.exit_code == 0, result.output
    [item] = until_held(busctl, 1, lambda item: item["name"] == "probe.ping")
    assert (item["kind"], item["service"], item["args"]) == ("event", "other", ["held-one"])
    result = busctl("unhold", "probe.ping")  # what it held goes on
    assert result.exit_code == 0, result.output
    assert f"released {item['id']}" in result.stdout


def test_unknown_ids_and_missing_arguments_are_one_line(busctl: Callable[..., Result]) -> None:
    result = busctl("drop", "999")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    result = busctl("release")
    assert result.exit_code == ExitStatus.USAGE
    assert "busctl held lists them" in result.stderr
    result = busctl("hold", "probe.echo", "--for", "forever")
    assert result.exit_code == ExitStatus.USAGE
    assert "'forever' is not a time" in result.stderr


def test_json_failures_print_an_error_object_on_stdout(busctl: Callable[..., Result]) -> None:
    result = busctl("drop", "999", "--json")
    assert result.exit_code == ExitStatus.NOT_FOUND
    error = json.loads(result.stdout)["error"]
    assert error["code"] == ErrorCode.NO_SUCH_HOLD
    assert error["status"] == ExitStatus.NOT_FOUND
    assert "999" in error["message"]
    assert result.stderr.startswith("error: ")  # the line for a person stays
    result = busctl("call", "--json", "probe.fail", "kaput")
    assert result.exit_code == ExitStatus.FAILED
    assert json.loads(result.stdout) == {
        "error": {
            "type": "ValueError",
            "message": "probe.fail raised ValueError: kaput",
            "code": ErrorCode.HANDLER_ERROR,
            "status": ExitStatus.FAILED,
        }
    }


# -- stub, stubs, unstub, and where a stub shows ----------------------------------------


def test_stub_raises_is_marked_everywhere_and_unstub_puts_the_real_one_back(
    busctl: Callable[..., Result],
) -> None:
    result = busctl("stub", "thermostat.read_sensor", "--raises", "TimeoutError: sensor off")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "stubbed thermostat.read_sensor on thermostat: raises TimeoutError: sensor off"
    )
    result = busctl("call", "thermostat.read_sensor", "living_room")
    assert result.exit_code == ExitStatus.FAILED
    assert "thermostat.read_sensor raised TimeoutError: sensor off" in result.stderr

    listing = busctl("stubs")
    assert "thermostat.read_sensor" in listing.stdout
    assert "TimeoutError: sensor off" in listing.stdout
    [stub] = json.loads(busctl("stubs", "--json").stdout)
    assert (stub["name"], stub["calls"]) == ("thermostat.read_sensor", 1)
    row = next(line for line in busctl("commands").stdout.splitlines() if "read_sensor" in line)
    assert "[stubbed]" in row
    assert "STUBBED" in busctl("introspect", "thermostat.read_sensor").stdout
    assert re.search(r"intervening:\s+1 stub, 0 holds", busctl("status").stdout)

    result = busctl("unstub", "thermostat.read_sensor")
    assert result.exit_code == 0, result.output
    assert "the real handler is back (the stub answered 1 call)" in result.stdout
    assert "[stubbed]" not in busctl("commands").stdout
    assert "intervening" not in busctl("status").stdout
    result = busctl("unstub", "thermostat.read_sensor")
    assert result.exit_code == ExitStatus.NOT_FOUND


def test_stub_returns_for_so_many_times_keeping_the_signature(
    busctl: Callable[..., Result],
) -> None:
    answer = '{"room": "hall", "on": true, "brightness": 7}'
    result = busctl("stub", "lights.get", "--returns", answer, "--times", "1")
    assert result.exit_code == 0, result.output
    assert "for 1 calls" in result.stdout
    result = busctl("call", "lights.get")  # the real signature: room is required
    assert result.exit_code == ExitStatus.USAGE
    result = busctl("call", "--json", "lights.get", "kitchen")
    assert json.loads(result.stdout) == json.loads(answer)
    result = busctl("call", "--json", "lights.get", "kitchen")  # used up: the real one
    assert json.loads(result.stdout)["room"] == "kitchen"
    assert busctl("stubs").stdout == "no command is stubbed\n"


def test_stub_needs_one_answer(busctl: Callable[..., Result]) -> None:
    result = busctl("stub", "lights.get")
    assert result.exit_code == ExitStatus.USAGE
    assert "--returns JSON or --raises" in result.stderr
    result = busctl("stub", "lights.gett", "--returns", "1")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert "lights.get" in result.stderr


def test_a_stubbed_command_fits_an_80_column_terminal_on_one_line(
    busctl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert busctl("stub", "lights.turn_on", "--returns", "{}").exit_code == 0
    monkeypatch.setenv("COLUMNS", "80")
    lines = busctl("commands").stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split()[-4:] == ["CALLS", "ERRORS", "P50", "P99"]
    row = next(line for line in lines if "turn_on" in line)
    assert row.startswith("lights.turn_on [stubbed] ")
    assert "…" in row  # the signature gave way, not the name
    assert len(lines) == 1 + len(json.loads(busctl("commands", "--json").stdout))


def test_commands_show_which_are_read_only(busctl: Callable[..., Result]) -> None:
    lines = busctl("commands").stdout.splitlines()
    assert re.search(r"\bRO\b", lines[0])
    get = next(line for line in lines if line.split()[0] == "lights.get")
    turn_on = next(line for line in lines if line.split()[0] == "lights.turn_on")
    assert re.search(r"\bro\b", get)
    assert not re.search(r"\bro\b", turn_on)


# -- history, and calling again ---------------------------------------------------------


def test_history_lists_calls_with_their_results_newest_last(
    busctl: Callable[..., Result],
) -> None:
    for value in ("first", "second"):
        assert busctl("call", "probe.echo", value, "n=1").exit_code == 0
    result = busctl("history", "probe.echo", "-n", "2", "--json")
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["args"] for e in entries] == [["first"], ["second"]]
    assert entries[-1]["kwargs"] == {"n": 1}
    assert entries[-1]["result"] == {"args": ["second"], "kwargs": {"n": 1}}
    text = busctl("history", "probe.echo", "-n", "1").stdout
    assert "probe.echo" in text
    assert '"second"' in text
    assert busctl("history", "nothing.matches.*").stdout.startswith("nothing in the bus")


def test_an_argument_of_the_wrong_type_is_a_usage_error(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "lights.turn_on", "kitchen", "brightness=dim")
    assert result.exit_code == ExitStatus.USAGE
    assert "argument 'brightness' must be int, not 'dim'" in result.stderr


def test_call_reads_arguments_from_a_file_or_stdin(
    busctl: Callable[..., Result], tmp_path: Path
) -> None:
    path = tmp_path / "args.json"
    path.write_text('{"args": ["hall"], "kwargs": {"n": 1}}')
    result = busctl("call", "--json", "probe.echo", f"@{path}", "n=2")
    assert json.loads(result.stdout) == {"args": ["hall"], "kwargs": {"n": 2}}
    # A history entry piped straight back in repeats its call.
    entry = busctl("history", "probe.echo", "-n", "1", "--json").stdout
    result = busctl("call", "--json", "probe.echo", "-", input=entry)
    assert json.loads(result.stdout) == {"args": ["hall"], "kwargs": {"n": 2}}
    result = busctl("call", "probe.echo", f"@{tmp_path / 'missing.json'}")
    assert result.exit_code == ExitStatus.USAGE
    assert "cannot read arguments from" in result.stderr


# -- monitor's filters --------------------------------------------------------------------


def _keep_calling(stop: threading.Event) -> threading.Thread:
    def run() -> None:
        with Client.connect("test") as client:
            while not stop.wait(0.02):
                client.execute("probe.echo", [1])
                client.fire("probe.ping", ["x"])
                with contextlib.suppress(RemoteError):
                    client.execute("probe.fail", ["kaput"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def traffic(bus_process: BusProcess, attached: Path) -> Iterator[None]:
    stop = threading.Event()
    thread = _keep_calling(stop)
    yield
    stop.set()
    thread.join(5)


@pytest.mark.usefixtures("traffic")
def test_monitor_filters_errors_kind_service_and_trace(busctl: Callable[..., Result]) -> None:
    def records(*args: str) -> list[dict[str, Any]]:
        result = busctl("monitor", "--json", *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]

    failures = records("--errors", "-n", "2")
    assert len(failures) == 2
    assert all(f["error"] and f["name"] == "probe.fail" for f in failures)

    events = records("--kind", "event", "-n", "4", "probe.*")
    assert {e["kind"] for e in events} <= {"event", "delivery"}
    assert {e["service"] for e in records("--service", "other", "-n", "2")} == {"other"}

    lines = busctl("monitor", "-n", "3", "probe.echo").stdout.splitlines()
    assert len(lines) == 3
    for line in lines:  # each line shows its trace's short id, which --trace takes
        assert re.search(r"\b[0-9a-f]{6}\b", line), line
    assert all(len(r["trace_id"]) == 32 for r in records("-n", "3", "probe.echo"))
