"""busctl end to end: a real ``busctl run`` subprocess, every verb through its socket.

Most verbs run in-process with click's ``CliRunner`` (fast) against the bus in
the subprocess; the ones about signals and exit codes of the real program run
as subprocesses too.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from busctl._client import Client
from busctl._exit import ExitStatus
from busctl.cli import cli
from tests.busctl.conftest import BusProcess
from tests.busctl.programs import run_busctl

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(bus_process: BusProcess, attached: Path) -> Iterator[Client]:
    with Client.connect("test") as c:
        yield c


def keep_firing(client: Client, name: str) -> Callable[[], None]:
    """Fire ``name`` every 20 ms on a thread until the returned function is called."""
    stop = threading.Event()

    def fire() -> None:
        while not stop.wait(0.02):
            client.fire(name, ["x"])
            client.execute("probe.echo", [1])

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()

    def done() -> None:
        stop.set()
        thread.join(5)

    return done


# -- reading the bus -----------------------------------------------------------------


def test_list_shows_the_bus(busctl: Callable[..., Result], bus_process: BusProcess) -> None:
    result = busctl("list")
    assert result.exit_code == 0, result.output
    assert "test" in result.stdout
    assert str(bus_process.process.pid) in result.stdout
    buses = json.loads(busctl("list", "--json").stdout)
    assert [b["name"] for b in buses] == ["test"]


def test_status(busctl: Callable[..., Result], bus_process: BusProcess) -> None:
    result = busctl("status")
    assert result.exit_code == 0, result.output
    assert "bus:" in result.stdout
    assert re.search(rf"^pid:\s+{bus_process.process.pid}$", result.stdout, re.MULTILINE)
    assert "services, " in result.stdout
    data = json.loads(busctl("status", "--json").stdout)
    assert data["bus"]["name"] == "test"
    assert data["totals"]["services"] == 8


def test_registries(busctl: Callable[..., Result]) -> None:
    result = busctl("services")
    assert result.exit_code == 0, result.output
    for name in ("greeter", "lights", "probe", "bus:test/probe"):
        assert name in result.stdout
    assert "say_hello" in busctl("commands").stdout
    assert "lights.*" in busctl("listeners").stdout or "probe.*" in busctl("listeners").stdout
    for verb in ("services", "commands", "listeners"):
        rows = json.loads(busctl(verb, "--json").stdout)
        assert isinstance(rows, list)
        assert rows


def test_introspect(busctl: Callable[..., Result]) -> None:
    result = busctl("introspect", "lights.turn_on")
    assert result.exit_code == 0, result.output
    assert "lights.turn_on(room: str, brightness: int = 100)" in result.stdout
    assert "bus:test/lights" in result.stdout
    assert "Turn the light in" in result.stdout
    assert "brightness" in result.stdout
    data = json.loads(busctl("introspect", "--json", "lights.turn_on").stdout)
    assert data["owner"] == "lights"
    assert data["threads"] == ["bus:test/lights"]


def test_introspect_unknown_suggests(busctl: Callable[..., Result]) -> None:
    result = busctl("introspect", "lights.turn_onn")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert "lights.turn_on" in result.stderr
    assert result.stdout == ""
    # An event is no command: introspect shows what it carries instead.
    result = busctl("introspect", "probe.ping")
    assert result.exit_code == 0, result.output
    assert "event:        probe.ping" in result.stdout
    assert "payload:      inferred from 1 listener of this exact name" in result.stdout
    wildcard = busctl("introspect", "probe.anything")  # only probe.* matches it
    assert wildcard.exit_code == 0, wildcard.output
    assert "payload:   not described: no listener registered for this exact name" in (
        wildcard.stdout
    )


def test_who_handles_a_command(busctl: Callable[..., Result]) -> None:
    result = busctl("who-handles", "say_hello")
    assert result.exit_code == 0, result.output
    assert "owner:" in result.stdout
    assert "greeter" in result.stdout
    assert "bus:test/greeter" in result.stdout
    assert "say_hello(name: str) -> str" in result.stdout


def test_who_handles_an_event_in_delivery_order(busctl: Callable[..., Result]) -> None:
    data = json.loads(busctl("who-handles", "--json", "probe.ping").stdout)
    assert data["command"] is None
    owners = [entry["owner"] for entry in data["listeners"]]
    assert owners == ["probe", "other"]  # registration order: probe was added first
    result = busctl("who-handles", "probe.ping")
    assert "2 listeners, in delivery order" in result.stdout
    assert result.stdout.index("probe.*") < result.stdout.index("Other.on_ping")


def test_who_handles_nothing(busctl: Callable[..., Result]) -> None:
    result = busctl("who-handles", "nobody.listens")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert "nothing handles 'nobody.listens'" in result.stderr


# -- call and emit -----------------------------------------------------------------------


def test_call_prints_the_result(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "say_hello", "Alice")
    assert result.exit_code == 0, result.output
    assert result.stdout == '"Hello, Alice!"\n'
    result = busctl("call", "--json", "probe.echo", "[1, 2]", "-3", "none", "k={'a': None}")
    assert json.loads(result.stdout) == {"args": [[1, 2], -3, "none"], "kwargs": {"k": {"a": None}}}


def test_call_takes_the_call_form_as_one_word(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "--json", "probe.echo(1, 'two', k=[3])")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"args": [1, "two"], "kwargs": {"k": [3]}}
    result = busctl("call", "probe.echo(1, k=[3)")
    assert result.exit_code == ExitStatus.USAGE
    assert "column" in result.stderr


def test_call_unknown_command_suggests(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "say_helo", "Alice")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert "say_hello" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_call_bad_literal_names_the_position(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "probe.echo", "ok", "[1, 2")
    assert result.exit_code == ExitStatus.USAGE
    assert "argument 2, column 1" in result.stderr


def test_call_arguments_that_do_not_bind(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "say_hello")
    assert result.exit_code == ExitStatus.USAGE
    assert "say_hello" in result.stderr


def test_call_handler_error_and_traceback(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "probe.fail", "kaput")
    assert result.exit_code == ExitStatus.FAILED
    assert "probe.fail raised ValueError: kaput" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("(-v shows the traceback)\n")
    assert len(result.stderr.splitlines()) == 1
    result = busctl("call", "-v", "probe.fail", "kaput")
    assert result.exit_code == ExitStatus.FAILED
    assert "Traceback" in result.stderr
    assert "raise ValueError(why)" in result.stderr


def test_call_timeout(busctl: Callable[..., Result]) -> None:
    result = busctl("call", "--timeout", "0.2", "probe.wait", "2")
    assert result.exit_code == ExitStatus.TIMEOUT
    assert "--timeout" in result.stderr


def test_emit(busctl: Callable[..., Result]) -> None:
    result = busctl("emit", "probe.ping", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "fired probe.ping to 2 listeners\n"
    assert json.loads(busctl("emit", "--json", "nobody.listens").stdout) == {
        "name": "nobody.listens",
        "listeners": 0,
    }


# -- monitor and capture -----------------------------------------------------------------


def test_monitor_json_lines(busctl: Callable[..., Result], client: Client) -> None:
    done = keep_firing(client, "probe.ping")
    try:
        result = busctl("monitor", "--json", "-n", "3", "probe.*")
    finally:
        done()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    assert all(line["name"].startswith("probe.") for line in lines)
    assert {line["kind"] for line in lines} <= {"call", "return", "event", "delivery"}


def test_monitor_lines_for_people(busctl: Callable[..., Result], client: Client) -> None:
    done = keep_firing(client, "probe.ping")
    try:
        result = busctl("monitor", "-n", "4", "probe.ping")
    finally:
        done()
    assert result.exit_code == 0, result.output
    assert "monitoring probe.ping on bus test" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert all("probe.ping" in line for line in lines)
    assert any(" event " in line and '("x")' in line for line in lines)


def test_capture_writes_otlp_json_lines(
    busctl: Callable[..., Result], client: Client, tmp_path: Path
) -> None:
    out = tmp_path / "capture.jsonl"
    done = keep_firing(client, "probe.ping")
    try:
        result = busctl("capture", "-o", str(out), "--duration", "1.5")
    finally:
        done()
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines
    names = set()
    for line in lines:
        data = json.loads(line)
        for resource in data["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    assert len(span["traceId"]) == 32
                    names.add(span["name"])
    assert any("probe.ping" in name for name in names)
    assert "captured " in result.stderr
    assert f"to {out}" in result.stderr


# -- failures without a bus, with two buses ---------------------------------------------


def test_no_bus(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == ExitStatus.NO_BUS
    assert "busctl run" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    assert "busctl run" in result.stderr
    assert CliRunner().invoke(cli, ["list", "--json"]).stdout == "[]\n"


def test_two_buses_are_named(busctl: Callable[..., Result], attached: Path) -> None:
    from bus import Bus

    with Bus(name="second", control=True):
        result = busctl("status")
        assert result.exit_code == ExitStatus.NO_BUS, result.output
        # Named once, with one hint (the library's own hint is not repeated).
        assert result.stderr == (
            "error: 2 buses are running (second, test): choose one with --bus NAME\n"
        )
        chosen = busctl("status", "--json", "--bus", "second")
        assert json.loads(chosen.stdout)["bus"]["name"] == "second"
        assert busctl("call", "--bus", "test", "say_hello", "Bo").stdout == '"Hello, Bo!"\n'


def test_bus_address_env_names_one(
    busctl: Callable[..., Result], bus_process: BusProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = Path(bus_process.runtime_dir) / "bus" / "test.sock"
    monkeypatch.setenv("BUS_ADDRESS", f"unix:path={address}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent")
    result = busctl("status", "--json")
    assert json.loads(result.stdout)["bus"]["name"] == "test"


def test_run_refuses_a_bad_target(busctl: Callable[..., Result]) -> None:
    result = busctl("run", "no_such_module_here")
    assert result.exit_code == ExitStatus.USAGE
    assert "no module named 'no_such_module_here'" in result.stderr


def test_run_refuses_a_name_in_use(busctl: Callable[..., Result]) -> None:
    result = busctl("run", "--name", "test", "sample_services.greeter:Greeter")
    assert result.exit_code == ExitStatus.ERROR
    assert "test" in result.stderr


# -- the real program: exit codes, signals ---------------------------------------------------


def test_subprocess_exit_codes(
    bus_process: BusProcess, home: Path, busctl_env: Callable[..., dict[str, str]]
) -> None:
    ok = run_busctl(busctl_env(home), "call", "say_hello", "Ann", timeout=30)
    missing = run_busctl(busctl_env(home), "call", "say_helo", timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert missing.returncode == ExitStatus.NOT_FOUND
    assert missing.stderr.startswith("error: no command named 'say_helo'")


def test_monitor_stops_on_ctrl_c(
    bus_process: BusProcess, home: Path, busctl_env: Callable[..., dict[str, str]]
) -> None:
    monitor = subprocess.Popen(
        [sys.executable, "-m", "busctl", "monitor"],
        cwd=ROOT,
        env=busctl_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert monitor.stderr is not None
    assert "monitoring everything" in monitor.stderr.readline()
    monitor.send_signal(signal.SIGINT)
    _, err = monitor.communicate(timeout=20)
    assert monitor.returncode == 0, err
    assert err.startswith("monitor stopped (")  # and nothing else: no traceback
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_shuts_down_cleanly(
    sig: signal.Signals, runtime_dir: Path, start_bus: Callable[..., BusProcess], probe_source: str
) -> None:
    probe = runtime_dir / "probe.py"
    probe.write_text(probe_source)
    mark = runtime_dir / "stopped"
    process = start_bus([str(probe)], runtime_dir, PROBE_STOP_FILE=str(mark))
    socket_path = runtime_dir / "bus" / "probe.sock"
    assert socket_path.exists()
    assert process.stop(sig) == 0
    assert not socket_path.exists()
    assert mark.read_text() == "stopped"
    assert "bus probe stopped" in "".join(process.stdout)


def test_embedded_when_no_bus_runs(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from busctl._embedded import connect_or_embed

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    client, bus = connect_or_embed(None)
    try:
        assert bus is not None
        assert client.name == "sample"
        assert client.execute("say_hello", ["Em"]) == "Hello, Em!"
        assert not (runtime_dir / "bus" / "sample.sock").exists()  # private: not discoverable
    finally:
        client.close()
        if bus is not None:
            bus.close()


@pytest.mark.timeout(20)
def test_the_embedded_bus_stays_in_this_process_whatever_bus_nats_url_says(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `busctl tui --nats ''` (and `make run`) with BUS_NATS_URL set: the demo bus
    # must not try to join that server (here, none listens there).
    from busctl._embedded import connect_or_embed

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    monkeypatch.setenv("BUS_NATS_URL", "nats://127.0.0.1:1")
    client, bus = connect_or_embed(None, nats="")
    try:
        assert bus is not None
        assert "nats" not in bus.inspect()  # joined no server
        assert client.execute("say_hello", ["Ned"]) == "Hello, Ned!"
    finally:
        client.close()
        if bus is not None:
            bus.close()


@pytest.mark.timeout(30)
def test_replay_to_pytest_looks_at_its_services_in_this_process_whatever_bus_nats_url_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from busctl.cli.replay import replay

    monkeypatch.setenv("BUS_NATS_URL", "nats://127.0.0.1:1")  # nothing listens there
    out = tmp_path / "test_replayed.py"
    result = CliRunner().invoke(replay, ["--sample", "--to-pytest", str(out)])
    assert result.exit_code == 0, result.output
    compile(out.read_text(encoding="utf-8"), str(out), "exec")


def test_embedded_never_replaces_a_named_bus(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bus.control import NoBusError
    from busctl._embedded import connect_or_embed

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    with pytest.raises(NoBusError):
        connect_or_embed("home")


def test_embedded_attaches_when_a_bus_runs(client: Client, attached: Path) -> None:
    from busctl._embedded import connect_or_embed

    found, bus = connect_or_embed(None)
    try:
        assert bus is None
        assert found.name == "test"
    finally:
        found.close()
