"""busctl when things go wrong: one line on stderr, the right exit status, never a traceback.

Service files that do not load, literals no reader could take, Ctrl-C at any
moment, messages that must not say the same thing twice, arguments that do
not bind, and services marked failed. The bus is a real ``busctl run``
subprocess (the module's ``bus_process``) or a real in-process bus with its
control socket; Ctrl-C is a real SIGINT to a real ``busctl`` process.
"""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bus import Bus
from busctl._client import Client
from busctl._exit import ExitStatus
from busctl.cli import cli
from busctl.cli.watch import json_activity
from tests.busctl.conftest import BusProcess
from tests.busctl.programs import BUSCTL_CTRL_C, attach_to, run_busctl

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(60)


def one_line_error(result: Result, status: ExitStatus) -> str:
    """The single stderr line of a failed verb, checked for shape."""
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- busctl run: targets that do not load ---------------------------------------------


@pytest.fixture
def runner_env(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    attach_to(monkeypatch, runtime_dir)
    return runtime_dir


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.mark.parametrize(
    ("filename", "source", "expected"),
    [
        ("syntax_zz1.py", "x = 1\ndef f(:\n    pass\n", "(line 2): SyntaxError: invalid syntax"),
        ("raises_zz1.py", "x = 1\nraise RuntimeError('nope')\n", "(line 2): RuntimeError: nope"),
        (
            "missing_dep_zz1.py",
            "import no_such_module_zz\n",
            "(line 1): ModuleNotFoundError: No module named 'no_such_module_zz'",
        ),
        (
            "exits_zz1.py",
            "import sys\nsys.exit(3)\n",
            "(line 2): it called exit(3) while being imported",
        ),
        (
            "json_zz1.py",
            "import json\n\njson.loads('{')\n",
            "(line 3): JSONDecodeError: Expecting property name",
        ),
    ],
)
def test_a_target_whose_code_fails_to_load_is_one_line_naming_the_line(
    runner_env: Path, filename: str, source: str, expected: str
) -> None:
    path = write(runner_env, filename, source)
    result = CliRunner().invoke(cli, ["run", str(path)], catch_exceptions=False)
    line = one_line_error(result, ExitStatus.USAGE)
    assert line.startswith(f"error: cannot load {path} ")
    assert expected in line
    assert line.endswith("(-v shows the traceback)")

    verbose = CliRunner().invoke(cli, ["run", "-v", str(path)], catch_exceptions=False)
    assert verbose.exit_code == ExitStatus.USAGE
    first, *rest = verbose.stderr.splitlines()
    assert expected in first
    assert "(-v shows" not in first
    assert rest[0] == "Traceback (most recent call last):"
    assert filename in "\n".join(rest)


def test_the_line_named_is_in_the_file_that_raised(runner_env: Path) -> None:
    write(runner_env, "helper_zz2.py", "x = 1\nraise KeyError('k')\n")
    path = write(runner_env, "uses_helper_zz2.py", "import helper_zz2\n")
    result = CliRunner().invoke(cli, ["run", str(path)], catch_exceptions=False)
    line = one_line_error(result, ExitStatus.USAGE)
    # The file is named as a path relative to the working directory, or in
    # full when that is far away: either way it ends with the file's name.
    assert "helper_zz2.py, line 2): KeyError: 'k'" in line


def test_a_module_that_fails_at_import(runner_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = runner_env / "broken_pkg_zz3"
    package.mkdir()
    write(package, "__init__.py", "x = 1\nraise RuntimeError('pkg boom')\n")
    monkeypatch.syspath_prepend(str(runner_env))
    for target in ("broken_pkg_zz3", "broken_pkg_zz3.sub", "broken_pkg_zz3:Thing"):
        result = CliRunner().invoke(cli, ["run", target], catch_exceptions=False)
        line = one_line_error(result, ExitStatus.USAGE)
        assert line.startswith(f"error: cannot load {target.partition(':')[0]} (")
        assert "__init__.py, line 2): RuntimeError: pkg boom" in line


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("no_such_module_zz", "error: no module named 'no_such_module_zz'; give a module"),
        ("sample_services:Nope", "error: module 'sample_services' has no 'Nope'"),
        (
            "sample_services:Greter",
            "error: module 'sample_services' has no 'Greter'; did you mean 'Greeter'",
        ),
        ("sample_services:greeter", "is not a Service class, a Service or a start(bus) function"),
        (":Greeter", "names no module or file before ':'"),
        ("missing_zz.py", "error: no such file: missing_zz.py"),
    ],
)
def test_targets_that_name_nothing_usable(runner_env: Path, target: str, expected: str) -> None:
    result = CliRunner().invoke(cli, ["run", target], catch_exceptions=False)
    assert expected in one_line_error(result, ExitStatus.USAGE)


def test_a_directory_is_not_a_service_file(runner_env: Path) -> None:
    folder = runner_env / "services_zz.py"
    folder.mkdir()
    for target in (str(folder), f"{folder}/"):
        result = CliRunner().invoke(cli, ["run", target], catch_exceptions=False)
        line = one_line_error(result, ExitStatus.USAGE)
        assert line == f"error: {target} is a directory; give a .py file, a module or module:Class"


def test_a_service_class_that_needs_arguments_is_refused_before_the_bus_starts(
    runner_env: Path,
) -> None:
    path = write(
        runner_env,
        "needs_args_zz.py",
        """
        from bus import Service

        class NeedsArgs(Service):
            def __init__(self, host: str) -> None:
                super().__init__()
        """,
    )
    for target in (str(path), f"{path}:NeedsArgs"):
        result = CliRunner().invoke(cli, ["run", target], catch_exceptions=False)
        line = one_line_error(result, ExitStatus.USAGE)
        assert f"cannot create NeedsArgs from {target!r}: its __init__ needs arguments" in line
        assert "'host'" in line
        assert "start(bus)" in line
    assert not (runner_env / "bus" / "needs_args_zz.sock").exists()


def test_services_that_fail_to_start_are_one_line_and_the_bus_goes(runner_env: Path) -> None:
    path = write(
        runner_env,
        "boom_zz.py",
        """
        from bus import Service

        class Boom(Service):
            def on_start(self) -> None:
                raise RuntimeError("no database")
        """,
    )
    result = CliRunner().invoke(cli, ["run", str(path)], catch_exceptions=False)
    line = one_line_error(result, ExitStatus.ERROR)
    assert line == (
        f"error: starting {str(path)!r} failed (line 6): RuntimeError: no database "
        "(-v shows the traceback)"
    )
    assert not (runner_env / "bus" / "boom_zz.sock").exists()

    twice = CliRunner().invoke(
        cli, ["run", "sample_services", "sample_services.greeter:Greeter"], catch_exceptions=False
    )
    line = one_line_error(twice, ExitStatus.ERROR)
    assert line.startswith("error: starting 'sample_services.greeter:Greeter' failed: ValueError: ")
    assert "a service named 'greeter' is already on the bus" in line


def test_the_real_program_prints_one_line_for_a_syntax_error(
    runtime_dir: Path, busctl_env: Callable[..., dict[str, str]]
) -> None:
    path = write(runtime_dir, "syntax_zz4.py", "def f(:\n    pass\n")
    done = run_busctl(busctl_env(runtime_dir), "run", str(path), timeout=30)
    assert done.returncode == ExitStatus.USAGE
    assert done.stderr == (
        f"error: cannot load {path} (line 1): SyntaxError: invalid syntax "
        "(-v shows the traceback)\n"
    )
    assert done.stdout == ""


# -- literals no reader could take ----------------------------------------------------------

_DEEP = "[" * 600 + "]" * 600


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["say_hello", _DEEP], "argument 1, column 1: nested deeper than 100 levels"),
        (["say_hello", '"\\ud800"'], "'\\ud800' is not valid Unicode (a lone surrogate, U+D800)"),
        (["say_hello", "caf\udce9"], "byte 0xE9 is not UTF-8"),
        (["say_hello", "1" * 5000], "an integer of 5000 digits is too long"),
        ([f"say_hello({_DEEP})"], "nested deeper than 100 levels"),
        (["say_hello(name='\\udfff')"], "'\\udfff' is not valid Unicode"),
        (["say\udcffhello", "x"], "'say\\udcffhello' is not valid Unicode"),
    ],
)
def test_call_and_emit_refuse_literals_in_one_line(
    busctl: Callable[..., Result], arguments: list[str], expected: str
) -> None:
    for verb in ("call", "emit"):
        line = one_line_error(busctl(verb, *arguments), ExitStatus.USAGE)
        assert line.startswith("error: bad argument: ")
        assert expected in line


def test_arguments_too_big_for_the_bus_are_refused_before_sending(
    busctl: Callable[..., Result],
) -> None:
    big = ["x" * 100_000] * 12  # each fits in argv; together they pass 1 MiB
    for verb in ("call", "emit"):
        line = one_line_error(busctl(verb, "probe.echo", *big), ExitStatus.USAGE)
        assert line.startswith("error: bad argument: the arguments take 1,200,0")
    assert busctl("call", "say_hello", "Bo").stdout == '"Hello, Bo!"\n'


def test_names_that_are_not_unicode_are_refused_by_every_verb(
    busctl: Callable[..., Result],
) -> None:
    for verb in (["introspect"], ["who-handles"], ["monitor"], ["capture", "-o", "-"]):
        line = one_line_error(busctl(*verb, "lights\udcff"), ExitStatus.USAGE)
        assert line.startswith("error: bad argument: 'lights\\udcff' is not valid Unicode")
        assert "byte 0xFF is not UTF-8" in line


def test_the_real_program_refuses_a_surrogate_escape_in_one_line(
    bus_process: BusProcess, home: Path, busctl_env: Callable[..., dict[str, str]]
) -> None:
    done = run_busctl(busctl_env(home), "call", "say_hello", '"\\ud800"', timeout=30)
    assert done.returncode == ExitStatus.USAGE
    assert done.stderr == (
        "error: bad argument: argument 1, column 1: '\\ud800' is not valid Unicode "
        "(a lone surrogate, U+D800)\n"
    )


# -- Ctrl-C ----------------------------------------------------------------------------------


def busctl_process(
    env: dict[str, str], *args: str, stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BUSCTL_CTRL_C, *args],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def activity(bus_process: BusProcess, attached: Path) -> Iterator[queue.Queue[dict[str, Any]]]:
    """Every activity record of the module's bus, from now on."""
    records: queue.Queue[dict[str, Any]] = queue.Queue()
    with Client.connect("test") as client:
        subscription = client.subscribe(
            "activity", lambda method, params: records.put(params.get("activity") or {})
        )
        yield records
        subscription.close()


def wait_for_activity(
    records: queue.Queue[dict[str, Any]], kind: str, name: str, timeout: float = 20.0
) -> dict[str, Any]:
    while True:
        record = records.get(timeout=timeout)
        if record.get("kind") == kind and record.get("name") == name:
            return record


def test_ctrl_c_in_call_says_the_command_runs_on(
    bus_process: BusProcess,
    home: Path,
    busctl_env: Callable[..., dict[str, str]],
    activity: queue.Queue[dict[str, Any]],
) -> None:
    process = busctl_process(busctl_env(home), "call", "probe.wait", "1.5")
    wait_for_activity(activity, "call", "probe.wait")  # it reached the bus: now we wait
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == ExitStatus.INTERRUPTED
    first, then = err.splitlines()
    assert first == (
        "stopped waiting for probe.wait: it runs on in the bus; "
        "press Ctrl-C again within 3 s to cancel it"
    )
    # No second Ctrl-C came: it says how the window ended, which on a loaded
    # machine may be before the 1.5 s command finished.
    assert then in (
        "probe.wait finished meanwhile; its result is dropped",
        "left probe.wait running in the bus; its result is dropped",
    )
    assert out == ""
    returned = wait_for_activity(activity, "return", "probe.wait")
    assert returned["result"] == '"done"'  # it did run on


class MuteBus:
    """A socket that accepts a console and never answers: it waits on its first reply."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.server.settimeout(20)
        self.peers: list[socket.socket] = []

    def wait_for_request(self) -> bytes:
        """Accept the next console and read its first request line."""
        peer, _ = self.server.accept()
        self.peers.append(peer)
        peer.settimeout(20)
        data = b""
        while not data.endswith(b"\n"):
            chunk = peer.recv(4096)
            assert chunk, "the console hung up before asking anything"
            data += chunk
        return data

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.server.close()


@pytest.fixture
def mute_bus(runtime_dir: Path) -> Iterator[MuteBus]:
    bus = MuteBus(runtime_dir / "mute.sock")
    yield bus
    bus.close()


@pytest.mark.parametrize(
    "verb",
    [
        ["status"],
        ["services"],
        ["introspect", "say_hello"],
        ["emit", "motion.detected", "hall"],
        ["call", "say_hello", "Ann"],
        ["monitor"],
        ["capture", "-o", "-"],
    ],
)
def test_ctrl_c_while_waiting_for_the_bus_ends_cleanly(
    verb: list[str],
    mute_bus: MuteBus,
    runtime_dir: Path,
    busctl_env: Callable[..., dict[str, str]],
) -> None:
    process = busctl_process(busctl_env(runtime_dir), *verb, "--bus", str(mute_bus.path))
    assert b'"method":"describe"' in mute_bus.wait_for_request()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == ExitStatus.INTERRUPTED, err
    # Nothing reached a bus: nothing is said to run on; monitor and capture
    # never began, so this is no clean end of a watch either.
    assert err == "interrupted\n"
    assert out == ""


def threads_of(pid: int) -> int:
    """How many threads process ``pid`` runs (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_ctrl_c_in_a_verb_of_click_alone_is_interrupted_not_aborted(
    runtime_dir: Path, busctl_env: Callable[..., dict[str, str]]
) -> None:
    # `bench` has no failure handling of its own: busctl's main() maps Ctrl-C.
    process = busctl_process(busctl_env(runtime_dir), "bench", "--repeat", "50")
    # Its first bus threads mean the verb runs, inside main(): then interrupt.
    pause = threading.Event()
    for _ in range(3000):
        if process.poll() is not None or threads_of(process.pid) > 1:
            break
        pause.wait(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == ExitStatus.INTERRUPTED, err
    assert err.strip() == "interrupted"
    assert "Aborted!" not in err


# A Ctrl-C that lands while busctl imports its verbs (a loaded machine takes
# seconds): SIGINT sent as the import of busctl.cli.group begins.
_CTRL_C_WHILE_LOADING = """
import importlib.abc, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)

class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "busctl.cli.group":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv[1:] = ["services"]
from busctl import main
main()
"""


def test_ctrl_c_while_busctl_loads_is_interrupted_without_a_traceback(
    runtime_dir: Path, busctl_env: Callable[..., dict[str, str]]
) -> None:
    process = subprocess.run(
        [sys.executable, "-c", _CTRL_C_WHILE_LOADING],
        cwd=ROOT,
        env=busctl_env(runtime_dir),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == ExitStatus.INTERRUPTED, process.stderr
    assert process.stderr == "interrupted\n"


def test_ctrl_c_stops_capture_with_its_summary(
    bus_process: BusProcess, home: Path, busctl_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "c.jsonl"
    process = busctl_process(busctl_env(home), "capture", "-o", str(out))
    assert process.stderr is not None
    assert process.stderr.readline().startswith("capturing spans of bus test")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == ExitStatus.OK
    assert err.startswith("captured ")
    assert "Traceback" not in err


# -- messages that say a thing once -----------------------------------------------------------


def test_a_timeout_says_once_that_the_command_may_still_finish(
    busctl: Callable[..., Result],
) -> None:
    line = one_line_error(busctl("call", "--timeout", "0.2", "probe.wait", "2"), ExitStatus.TIMEOUT)
    assert line == (
        "error: probe.wait did not finish within 0.2 s; it may still finish; "
        "raise --timeout to wait longer"
    )


def test_a_bus_that_is_not_there_is_said_once(
    busctl: Callable[..., Result], runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = one_line_error(busctl("status", "--bus", "nosuch"), ExitStatus.NO_BUS)
    assert (
        line
        == "error: no bus named 'nosuch' is running; running: test; start one with `busctl run`"
    )
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))  # where nothing runs
    line = one_line_error(busctl("status", "--bus", "nosuch"), ExitStatus.NO_BUS)
    assert line == "error: no bus named 'nosuch' is running; start one with `busctl run`"


def test_an_unknown_command_suggests_once(busctl: Callable[..., Result]) -> None:
    line = one_line_error(busctl("call", "say_helo", "x"), ExitStatus.NOT_FOUND)
    assert line == "error: no command named 'say_helo'; did you mean 'say_hello'?"


# -- arguments that do not bind ------------------------------------------------------------


def test_a_misspelt_keyword_is_named_with_the_missing_argument(
    busctl: Callable[..., Result],
) -> None:
    line = one_line_error(busctl("call", "say_hello", "nme=Bob"), ExitStatus.USAGE)
    assert line == (
        "error: say_hello(name: str) -> str: missing required argument 'name'; "
        "unexpected keyword argument 'nme' (did you mean 'name'?)"
    )


def test_an_option_style_argument_gets_the_keyword_spelling(
    busctl: Callable[..., Result],
) -> None:
    line = one_line_error(
        busctl("call", "lights.turn_on", "kitchen", "--brightness", "60"), ExitStatus.USAGE
    )
    assert line == (
        "error: lights.turn_on(room: str, brightness: int = 100) -> LightState: "
        "too many positional arguments: takes 1 to 2, got 3; "
        "write a keyword argument as brightness=60, not --brightness 60"
    )
    line = one_line_error(busctl("call", "say_hello", "Ann", "--name=Bob"), ExitStatus.USAGE)
    assert line.endswith("; write a keyword argument as name=Bob, not --name=Bob")
    # An argument that binds is sent as it is, dashes and all.
    result = busctl("call", "--json", "probe.echo", "--colour")
    assert json.loads(result.stdout) == {"args": ["--colour"], "kwargs": {}}


# -- monitor --json ----------------------------------------------------------------------------


def test_monitor_json_carries_arguments_and_results_as_json_values(
    busctl: Callable[..., Result], bus_process: BusProcess, attached: Path
) -> None:
    stop = threading.Event()

    def traffic() -> None:
        with Client.connect("test") as client:
            while not stop.is_set():
                client.execute("probe.echo", [1, "two"], {"k": [3]})
                stop.wait(0.02)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        result = busctl("monitor", "--json", "-n", "2", "probe.echo")
    finally:
        stop.set()
        thread.join(10)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_kind = {record["kind"]: record for record in records}
    call = by_kind.get("call") or by_kind["return"]
    if "call" in by_kind:
        assert call["args"] == [1, "two"]
        assert call["kwargs"] == {"k": [3]}
    if "return" in by_kind:
        assert by_kind["return"]["result"] == {"args": [1, "two"], "kwargs": {"k": [3]}}


def test_json_activity_marks_text_cut_at_the_bound() -> None:
    record = {
        "kind": "call",
        "name": "x",
        "args": '["aaaa',
        "kwargs": '{"k":1}',
        "result": None,
        "listeners": 2,
    }
    assert json_activity(record) == {
        "kind": "call",
        "name": "x",
        "args": {"$truncated": '["aaaa'},
        "kwargs": {"k": 1},
        "result": None,
        "listeners": 2,
    }
    assert record["args"] == '["aaaa'  # the record it was given is left alone


# -- services marked failed -----------------------------------------------------------------


@pytest.fixture
def failed_bus(runner_env: Path, fail_a_service: Callable[[Bus], None]) -> Iterator[Bus]:
    with Bus(name="shaky", control=True) as bus:
        fail_a_service(bus)
        yield bus


def test_services_and_status_show_a_failed_service_and_its_error(failed_bus: Bus) -> None:
    invoke = CliRunner().invoke
    services = invoke(cli, ["services", "--bus", "shaky"], catch_exceptions=False)
    assert services.exit_code == 0, services.output
    row = next(line for line in services.stdout.splitlines() if line.startswith("fragile"))
    assert "failed (RuntimeError: no database at db.local:5432)" in row

    status = invoke(cli, ["status", "--bus", "shaky"], catch_exceptions=False)
    assert status.exit_code == 0, status.output
    assert "failed:       fragile failed (RuntimeError: no database at db.local:5432)" in (
        status.stdout
    )
    data = json.loads(invoke(cli, ["status", "--json", "--bus", "shaky"]).stdout)
    assert data["failed_services"] == [
        {"name": "fragile", "error": "RuntimeError: no database at db.local:5432"}
    ]


def test_status_of_a_healthy_bus_has_no_failed_line(busctl: Callable[..., Result]) -> None:
    result = busctl("status")
    assert "failed:" not in result.stdout
    assert json.loads(busctl("status", "--json").stdout)["failed_services"] == []
