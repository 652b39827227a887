"""The REPL driven through prompt-toolkit's pipe input, against a real bus with the sample services.

Each test types into a pipe, the REPL runs on a thread of its own, and the
test waits on what the REPL writes (never on the clock). The bus is reached
through its real control socket; ``LocalClient``, an in-process stand-in for
the client, lets two tests break the connection exactly when they want.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import queue
import shutil
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import sample_services
from bus import Activity, Bus, CommandNotFoundError, Service, command, listener
from busctl._client import Client, ConnectionLost, RemoteError
from busctl.repl.complete import pattern_matches
from busctl.repl.session import Repl, default_history_path
from tests.busctl.served_buses import QUIET_SAMPLES, control_bus

pytestmark = pytest.mark.timeout(30)

WAIT = 10.0


class Probe(Service):
    """Commands that fail, block until released, and a listener that reports."""

    name = "probe"

    def __init__(self) -> None:
        super().__init__()
        self.pings: queue.Queue[Any] = queue.Queue()
        self.started = threading.Event()
        self.release = threading.Event()

    @command("probe.fail")
    def fail(self, message: str) -> None:
        """Raise ValueError(message)."""
        raise ValueError(message)

    @command("probe.wait")
    def wait(self) -> str:
        """Block until the test releases it."""
        self.started.set()
        self.release.wait(WAIT)
        return "released"

    @listener("probe.*")
    def on_ping(self, value: Any = None) -> None:
        """Report each probe.* event to the test."""
        self.pings.put(value)


# -- an in-process stand-in for busctl._client.Client ---------------------------------


class _LocalSubscription:
    def __init__(self, unwatch: Any) -> None:
        self._unwatch = unwatch

    def close(self, timeout: float | None = 5.0) -> int:
        self._unwatch()
        return 0


class LocalClient:
    """What the REPL uses of ``Client``, served by a ``Bus`` in this process."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.name = "local"
        self.address = Path("/nonexistent/local.sock")
        self.info = {"name": "local", "pid": 0, "address": str(self.address)}
        self.closed = False
        self.error: BaseException | None = None
        self._on_disconnect: list[Callable[[], None]] = []

    def request_async(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        if self.closed:
            raise ConnectionLost("connection to bus local is closed")
        params = params or {}
        future: Future[Any] = Future()
        try:
            if method == "execute":
                inner = self.bus.execute_command(
                    params["name"], *params.get("args", []), **params.get("kwargs", {})
                )
                inner.add_done_callback(lambda f: self._settle(f, future))
                return future
            future.set_result(self._answer(method, params))
        except CommandNotFoundError as exc:
            future.set_exception(RemoteError(-32001, str(exc), {"type": type(exc).__name__}))
        except TypeError as exc:
            future.set_exception(RemoteError(-32002, str(exc), {"type": "TypeError"}))
        return future

    def _answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "inspect":
            return self.bus.inspect()
        if method == "fire":
            self.bus.fire_event(params["name"], *params.get("args", []), **params.get("kwargs", {}))
            return {"listeners": len(self._listeners(params["name"]))}
        if method == "schema":
            from bus.schema import json_schema

            return json_schema(self.bus)
        if method == "who_handles":
            name = params["name"]
            commands = {c["name"]: c for c in self.bus.inspect()["commands"]}
            return {"name": name, "command": commands.get(name), "listeners": self._listeners(name)}
        raise AssertionError(f"LocalClient does not do {method}")

    def _listeners(self, name: str) -> list[dict[str, Any]]:
        listeners = self.bus.inspect()["listeners"]
        return [entry for entry in listeners if pattern_matches(entry["pattern"], name)]

    @staticmethod
    def _settle(inner: Future[Any], outer: Future[Any]) -> None:
        if outer.done():  # the REPL stopped waiting
            return
        exc = inner.exception()
        if exc is None:
            outer.set_result({"value": inner.result()})
            return
        text = "".join(traceback.format_exception(exc))
        data = {"type": type(exc).__name__, "message": str(exc), "traceback": text}
        outer.set_exception(RemoteError(-32000, str(exc), data))

    def inspect(self) -> dict[str, Any]:
        return self.bus.inspect()

    def subscribe(
        self,
        topic: str,
        callback: Callable[[str, dict[str, Any]], None],
        patterns: Any = ("*",),
        buffer: int = 10_000,
        timeout: float | None = 10.0,
    ) -> _LocalSubscription:
        wanted = list(patterns)

        def watch(activity: Activity) -> None:
            if any(pattern_matches(p, activity.name) for p in wanted):
                callback("activity", {"subscription": 1, "activity": activity.to_json()})

        return _LocalSubscription(self.bus.watch(watch))

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        self._on_disconnect.append(callback)

    def lose(self) -> None:
        """Break the 'connection' as a dying bus would."""
        self.closed = True
        self.error = ConnectionLost("the bus closed the connection")
        for callback in self._on_disconnect:
            callback()

    def close(self) -> None:
        self.closed = True


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def home_bus() -> Iterator[tuple[Bus, Probe]]:
    probe = Probe()
    with control_bus("home", samples={**QUIET_SAMPLES, "notifier_delay": 0}) as bus:
        try:
            bus.add_service(probe)
            yield bus, probe
        finally:
            probe.release.set()


@pytest.fixture
def client(home_bus: tuple[Bus, Probe]) -> Iterator[Any]:
    bus, _ = home_bus
    with Client.connect(str(bus.address)) as real:
        yield real


class Transcript(io.StringIO):
    """The REPL's stdout; ``wait_for`` blocks until some text has been written."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            written = super().write(text)
            self._changed.notify_all()
        return written

    def wait_for(self, text: str, *, after: int = 0, timeout: float = WAIT) -> int:
        """Wait until ``text`` appears past offset ``after``; return where it ends."""
        with self._changed:
            found = self._changed.wait_for(lambda: text in self.getvalue()[after:], timeout)
        assert found, f"{text!r} never appeared in:\n{self.getvalue()[after:]}"
        return self.getvalue().index(text, after) + len(text)


class Session:
    """A REPL on a thread, typed into through a pipe."""

    def __init__(self, client: Any, **options: Any) -> None:
        self.out = Transcript()
        self._pipe = contextlib.ExitStack()
        self.keys = self._pipe.enter_context(create_pipe_input())
        self.repl = Repl(
            client, input=self.keys, output=DummyOutput(), stdout=self.out, colour=False, **options
        )
        self.status: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="repl-under-test", daemon=True)
        self._thread.start()
        self.out.wait_for("Ctrl-D exits")

    def _run(self) -> None:
        try:
            self.status = self.repl.run()
        except BaseException as exc:
            self.error = exc

    def type(self, text: str) -> None:
        self.keys.send_text(text)

    def line(self, text: str, expect: str) -> str:
        """Type a line and return what the REPL wrote up to ``expect``."""
        start = len(self.out.getvalue())
        self.type(text + "\r")
        end = self.out.wait_for(expect, after=start)
        return self.out.getvalue()[start:end]

    def finish(self) -> int | None:
        self.type("\x04")
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the REPL did not leave on Ctrl-D"
        self._pipe.close()
        if self.error is not None:
            raise self.error
        return self.status


@pytest.fixture
def session(client: Any) -> Iterator[Session]:
    running = Session(client)
    yield running
    if running._thread.is_alive():
        running.finish()


def completions(repl: Repl, text: str) -> list[str]:
    document = Document(text)
    return [c.text for c in repl.completer.get_completions(document, CompleteEvent())]


# -- completion -------------------------------------------------------------------


def test_completes_command_names_and_verbs(session: Session) -> None:
    assert completions(session.repl, "lights.t") == ["lights.turn_off", "lights.turn_on"]
    assert completions(session.repl, "mon") == ["monitor"]
    assert "say_hello" in completions(session.repl, "")
    assert completions(session.repl, "?say") == ["say_hello"]
    assert completions(session.repl, "help lights.g") == ["lights.get"]


def test_completes_keyword_names_from_the_signature(session: Session) -> None:
    repl = session.repl
    assert completions(repl, "lights.turn_on ") == ["brightness=", "room="]
    # a positional argument fills `room`, so only `brightness` is left
    assert completions(repl, "lights.turn_on kitchen ") == ["brightness="]
    assert completions(repl, "lights.turn_on kitchen b") == ["brightness="]
    assert completions(repl, "notifier.send(message='hi', ") == ["channel="]
    assert completions(repl, "thermostat.set_target(z") == ["zone="]
    assert completions(repl, "call say_hello ") == ["name="]


def test_completes_event_names_from_patterns_and_activity(
    session: Session, home_bus: tuple[Bus, Probe]
) -> None:
    assert completions(session.repl, "emit mot") == ["motion.detected"]
    assert completions(session.repl, "emit probe") == ["probe."]  # from the pattern probe.*
    assert completions(session.repl, "emit greet_event ") == ["name="]
    _, probe = home_bus
    session.line("emit probe.hello 1", "matched")
    assert probe.pings.get(timeout=WAIT) == 1
    assert "probe.hello" in completions(session.repl, "emit probe.")


def test_registry_follows_the_bus(session: Session, home_bus: tuple[Bus, Probe]) -> None:
    bus, _ = home_bus

    class Late(Service):
        name = "late"

        @command("late.answer")
        def answer(self, question: str = "life") -> int:
            """Answer it."""
            return 42

    bus.add_service(Late())
    session.line("commands", "late.answer")
    assert completions(session.repl, "late.") == ["late.answer"]
    assert completions(session.repl, "late.answer ") == ["question="]


# -- help -------------------------------------------------------------------------


def test_help_lists_the_verbs(session: Session) -> None:
    text = session.line("help", "Ctrl-D exits.")
    for verb in ("emit", "monitor", "inspect", "services", "commands", "verbose", "exit"):
        assert f"  {verb}" in text
    assert "NAME(ARG, key=value)" in text


def test_help_on_a_command(session: Session) -> None:
    session.line("lights.turn_on hall", '"on": true')
    text = session.line("help lights.turn_on", "last error:")
    assert "lights.turn_on(room: str, brightness: int = 100) -> LightState" in text
    assert "readonly:   no" in text
    assert "calls:      1, 0 failed" in text
    text = session.line("?lights.get", "last error:")
    assert "lights.get(room: str) -> LightState" in text
    assert "readonly:   yes" in text


def test_help_on_an_event_and_on_nothing(session: Session) -> None:
    text = session.line("help motion.detected", "listener(s):")
    assert "event motion.detected reaches 1 listener(s):" in text
    session.line("help greet_event", "Greeter.on_greet")
    session.line("help nothing.here", "no command named nothing.here")


# -- calls ------------------------------------------------------------------------


def test_call_with_positional_and_keyword_forms(session: Session) -> None:
    assert '"Hello, Alice!"' in session.line("say_hello Alice", 'Alice!"')
    text = session.line("lights.turn_on(room='hall', brightness=40)", "}")
    assert '"brightness": 40' in text
    assert '"room": "hall"' in text
    text = session.line("lights.turn_on kitchen brightness=60", "}")
    assert '"brightness": 60' in text
    assert '"Hello, Bob!"' in session.line("call say_hello(name=Bob)", 'Bob!"')


def test_bad_literal_names_the_position(session: Session) -> None:
    text = session.line("lights.turn_on kitchen brightness={oops", "\n")
    assert text.startswith("error: bad argument: argument 2")
    text = session.line("lights.turn_on kitchen [1, oops]", "\n")
    assert "argument 2, column 5" in text
    assert "oops is not a literal" in text


def test_handler_error_is_one_line_then_the_traceback_on_request(session: Session) -> None:
    text = session.line("probe.fail boom", "traceback")
    assert "error: ValueError: boom\n" in text
    assert "Traceback" not in text
    text = session.line("traceback", "ValueError: boom")
    assert "Traceback (most recent call last)" in text
    session.line("verbose on", "verbose is on")
    start = len(session.out.getvalue())
    session.type("probe.fail bang\r")
    end = session.out.wait_for("raise ValueError(message)", after=start)
    text = session.out.getvalue()[start:end]
    assert text.index("error: ValueError: bang") < text.index("Traceback (most recent call last)")


def test_unknown_command_and_arguments_that_do_not_bind(session: Session) -> None:
    session.line("lihgts.get kitchen", "CommandNotFoundError")
    session.line("say_hello", "error:")
    text = session.line("say_hello a b c", "error:")
    assert "bad argument" not in text


def test_errors_say_each_thing_once_and_name_every_binding_problem(client: Any) -> None:
    out = Transcript()
    repl = Repl(client, stdout=out, colour=False, output=DummyOutput())
    repl.run_script(
        [
            "say_helo x",
            "say_hello",
            "say_hello nme=Bob",
            "lights.turn_on kitchen --brightness 60",
            "say_hello(nme='Bob')",
        ]
    )
    errors = [line for line in out.getvalue().splitlines() if line.startswith("error:")]
    assert errors == [
        "error: CommandNotFoundError: no command named 'say_helo'; did you mean 'say_hello'?",
        "error: TypeError: say_hello(name: str) -> str: missing required argument 'name'",
        "error: TypeError: say_hello(name: str) -> str: missing required argument 'name'; "
        "unexpected keyword argument 'nme' (did you mean 'name'?)",
        "error: TypeError: lights.turn_on(room: str, brightness: int = 100) -> LightState: "
        "too many positional arguments: takes 1 to 2, got 3; "
        "write a keyword argument as brightness=60, not --brightness 60",
        "error: TypeError: say_hello(name: str) -> str: missing required argument 'name'; "
        "unexpected keyword argument 'nme' (did you mean 'name'?)",
    ]


def test_lines_that_are_not_unicode_are_one_error_each(client: Any) -> None:
    # What a script on stdin with bytes that are not UTF-8 becomes (surrogateescape).
    out = Transcript()
    repl = Repl(client, stdout=out, colour=False, output=DummyOutput())
    status = repl.run_script(
        [
            "who-handles lights\udcff",
            "help x\udcff",
            "monitor a\udcff",
            "emit motion\udcff hall",
            "say_hello \udcff",
            'say_hello(name="\\ud800")',
            "say_hello Ann",
        ]
    )
    errors = [line for line in out.getvalue().splitlines() if line.startswith("error:")]
    assert len(errors) == 6, out.getvalue()
    assert all("is not valid Unicode" in line for line in errors)
    assert '"Hello, Ann!"' in out.getvalue()  # and the REPL goes on
    assert status == 1


def test_a_failed_service_shows_with_its_error(
    client: Any, home_bus: tuple[Bus, Probe], fail_a_service: Callable[[Bus], None]
) -> None:
    bus, _ = home_bus
    fail_a_service(bus)
    out = Transcript()
    Repl(client, stdout=out, colour=False, output=DummyOutput()).run_script(["services", "inspect"])
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("fragile"))
    assert "failed (RuntimeError: no database at db.local:5432)" in row
    assert "  failed:       fragile failed (RuntimeError: no database at db.local:5432)" in text


def test_emit_reaches_a_listener(session: Session, home_bus: tuple[Bus, Probe]) -> None:
    _, probe = home_bus
    assert "fired probe.ping: 1 listener matched" in session.line("emit probe.ping 7", "matched")
    assert probe.pings.get(timeout=WAIT) == 7
    session.line("emit probe.ping(value=[1, 2])", "matched")
    assert probe.pings.get(timeout=WAIT) == [1, 2]
    session.line("emit", "usage: emit")


def test_quick_views(session: Session) -> None:
    session.line("inspect", "hung:")
    text = session.line("services", "probe")
    assert "greeter" in text
    assert "say_hello" in session.line("commands", "thermostat.set_target")
    assert "motion.detected" in session.line("listeners", "probe.*")
    assert "Greeter.say_hello" in session.line("who-handles say_hello", "last error:")


# -- waiting, monitor, Ctrl-C, Ctrl-D ---------------------------------------------


def test_monitor_prints_activity_and_leaves_on_ctrl_c(
    session: Session, home_bus: tuple[Bus, Probe]
) -> None:
    bus, _ = home_bus
    start = len(session.out.getvalue())
    session.type("monitor probe.* say_hello\r")
    session.out.wait_for("Ctrl-C stops", after=start)
    bus.fire_event("probe.ping", 3)
    session.out.wait_for("probe.ping", after=start)
    # The listener's delivery line comes from its own thread, in its own time.
    session.out.wait_for("delivery", after=start)
    bus.execute_command("say_hello", "Carol").result(timeout=WAIT)
    at = session.out.wait_for('"Hello, Carol!"', after=start)
    session.type("\x03")
    session.out.wait_for("monitor stopped", after=at)
    text = session.out.getvalue()[start:]
    assert "delivery" in text
    assert "call     say_hello" in text
    assert "clock.tick" not in text
    assert '"Hello, Dan!"' in session.line("say_hello Dan", 'Dan!"')  # back at the prompt


def test_ctrl_c_cancels_the_wait_but_not_the_call(
    session: Session, home_bus: tuple[Bus, Probe]
) -> None:
    _, probe = home_bus
    start = len(session.out.getvalue())
    session.type("probe.wait\r")
    assert probe.started.wait(WAIT)
    session.type("\x03")  # asks whether to cancel it; a second Ctrl-C stops waiting
    session.out.wait_for("Ctrl-C again stops waiting and leaves it running", after=start)
    session.type("\x03")
    end = session.out.wait_for("result is dropped", after=start)
    text = session.out.getvalue()[start:end]
    assert "stopped waiting for probe.wait: it runs on in the bus" in text
    assert '"Hello, Eve!"' in session.line("say_hello Eve", 'Eve!"')
    probe.release.set()


def test_keys_typed_while_waiting_reach_the_next_prompt(
    session: Session, home_bus: tuple[Bus, Probe]
) -> None:
    _, probe = home_bus
    session.type("probe.wait\r")
    assert probe.started.wait(WAIT)
    session.type("say_hello Fay\r")
    probe.release.set()
    session.out.wait_for('"released"')
    session.out.wait_for('"Hello, Fay!"')


def test_ctrl_c_at_the_prompt_clears_the_line(session: Session) -> None:
    start = len(session.out.getvalue())
    session.type("probe.fail never\x03")
    text = session.line("say_hello Gus", "Gus!")
    assert "never" not in session.out.getvalue()[start:]
    assert "error" not in text


def test_ctrl_d_and_exit_leave(client: Any) -> None:
    running = Session(client)
    assert running.finish() == 0
    running = Session(client)
    running.type("exit\r")
    running._thread.join(WAIT)
    assert running.status == 0


def test_history_is_kept_in_the_file(client: Any, tmp_path: Path) -> None:
    path = tmp_path / "state" / "busctl" / "history"
    path.parent.mkdir(parents=True)
    running = Session(client, history=FileHistory(str(path)))
    running.line("say_hello Hal", "Hal!")
    running.line("help", "Ctrl-D exits.")
    running.finish()
    assert "+say_hello Hal" in path.read_text()
    # the next session finds it: Up recalls the last line
    running = Session(client, history=FileHistory(str(path)))
    running.type("\x1b[A\x1b[A\r")
    running.out.wait_for('"Hello, Hal!"')
    running.finish()


def test_default_history_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_history_path() == tmp_path / "busctl" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_history_path() == Path.home() / ".local" / "state" / "busctl" / "history"


# -- a lost connection ------------------------------------------------------------


def test_lost_connection_offers_to_reconnect(home_bus: tuple[Bus, Probe]) -> None:
    bus, _ = home_bus
    first = LocalClient(bus)
    running = Session(first, connect=lambda: LocalClient(bus), learn_events=False)
    first.lose()
    running.out.wait_for("is lost")
    running.type("y\r")
    running.out.wait_for("reconnected to bus local")
    running.line("say_hello Ivy", "Ivy!")
    running.repl.client.lose()  # type: ignore[attr-defined]
    running.out.wait_for("is lost", after=running.out.getvalue().index("Ivy!"))
    running.type("n\r")
    running._thread.join(WAIT)
    assert running.status == 3
    running._pipe.close()


def test_lost_connection_during_a_call(home_bus: tuple[Bus, Probe]) -> None:
    bus, _ = home_bus
    first = LocalClient(bus)

    class Failing(LocalClient):
        def request_async(self, method: str, params: Any = None) -> Future[Any]:
            if method == "execute":
                self.lose()
                raise ConnectionLost("connection to bus local lost: the bus closed the connection")
            return super().request_async(method, params)

    broken = Failing(bus)
    running = Session(broken, connect=lambda: first, learn_events=False)
    running.type("say_hello Jo\r")
    running.out.wait_for("error: connection to bus local lost")
    running.type("\r")
    running.out.wait_for("reconnected")
    running.line("say_hello Jo", "Jo!")
    running.finish()


def test_script_mode_runs_lines_and_reports_failures(client: Any) -> None:
    out = Transcript()
    repl = Repl(client, stdout=out, colour=False, output=DummyOutput())
    status = repl.run_script(["say_hello Kim\n", "# a comment\n", "probe.fail oops\n", "exit\n"])
    text = out.getvalue()
    assert '> say_hello Kim\n"Hello, Kim!"\n' in text
    assert "error: ValueError: oops" in text
    assert status == 1
    assert Repl(client, stdout=out, output=DummyOutput()).run_script(["say_hello Lu"]) == 0


@pytest.mark.timeout(15)
def test_the_prompt_is_one_however_many_threads_ask_for_it(client: Any) -> None:
    # functools.cached_property stopped locking in Python 3.12: a thread that
    # asked for the prompt while the REPL's made it got one of its own, which
    # no key ever reached (test_tab_completes_at_the_prompt hung on 3.12).
    with create_pipe_input() as keys:
        repl = Repl(client, input=keys, output=DummyOutput(), stdout=io.StringIO(), colour=False)
        start = threading.Barrier(8)
        seen: queue.Queue[object] = queue.Queue()

        def ask() -> None:
            start.wait(WAIT)
            seen.put(repl.session)

        askers = [threading.Thread(target=ask, name=f"asker-{i}") for i in range(8)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(WAIT)
        prompts = [seen.get(timeout=WAIT) for _ in askers]
        assert all(prompt is repl.session for prompt in prompts)


def test_tab_completes_at_the_prompt(session: Session) -> None:
    buffer = session.repl.session.default_buffer
    typed: queue.Queue[str] = queue.Queue()
    offered: queue.Queue[int] = queue.Queue()
    buffer.on_text_changed += lambda changed: typed.put(changed.text)
    buffer.on_completions_changed += lambda changed: offered.put(
        len(changed.complete_state.completions) if changed.complete_state else 0
    )

    def tab(text: str, becomes: str) -> None:
        # As a person does: type, see the completions offered while typing, press Tab.
        # (A Tab racing the completion that typing started is dropped by prompt-toolkit.)
        session.type(text)
        while offered.get(timeout=WAIT) == 0:
            pass
        session.type("\t")
        while typed.get(timeout=WAIT) != becomes:
            pass

    tab("say_hel", "say_hello")
    assert '"Hello, Mo!"' in session.line(" Mo", 'Mo!"')
    tab("lights.turn_on hall bri", "lights.turn_on hall brightness=")
    assert '"brightness": 30' in session.line("30", "}")


# -- the embedded bus, busctl repl, a bus that goes away ------------------------


def test_embedded_sample_bus_when_none_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from busctl._embedded import connect_or_embed

    runtime = Path(tempfile.mkdtemp(prefix="brp", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    client, embedded = connect_or_embed(None)
    try:
        assert embedded is not None
        running = Session(client, embedded=True)
        banner = running.out.getvalue()
        assert "No bus is running, so this REPL started an embedded bus 'sample'" in banner
        assert '"Hello, Ned!"' in running.line("say_hello Ned", 'Ned!"')
        assert running.finish() == 0
    finally:
        client.close()
        if embedded is not None:
            embedded.close()
        shutil.rmtree(runtime, ignore_errors=True)


def test_busctl_repl_runs_a_script_from_stdin(home_bus: tuple[Bus, Probe]) -> None:
    from click.testing import CliRunner

    from busctl.repl.command import repl

    bus, _ = home_bus
    address = str(bus.address)
    result = CliRunner().invoke(
        repl, ["--bus", address], input="say_hello Olga\nlights.get(room=hall)\n"
    )
    assert result.exit_code == 0, result.output
    assert '"Hello, Olga!"' in result.output
    assert '"room": "hall"' in result.output
    result = CliRunner().invoke(repl, ["--bus", address], input="probe.fail x\n")
    assert result.exit_code == 1
    assert "error: ValueError: x" in result.output


def test_bus_going_away_is_reported_and_the_repl_leaves(home_bus: tuple[Bus, Probe]) -> None:
    bus, _ = home_bus
    client = Client.connect(str(bus.address))
    running = Session(client)
    bus.close()
    running.out.wait_for("is lost")
    running.type("n\r")
    running._thread.join(WAIT)
    assert running.status == 3
    running._pipe.close()
    client.close()


def test_sigint_interrupts_a_wait_in_a_script(client: Any, home_bus: tuple[Bus, Probe]) -> None:
    # On the main thread SIGINT (Ctrl-C outside raw mode, kill -INT) stops the wait only.
    assert threading.current_thread() is threading.main_thread()
    _, probe = home_bus

    def interrupt() -> None:
        if probe.started.wait(WAIT):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    out = Transcript()
    repl = Repl(client, stdout=out, colour=False, output=DummyOutput())
    assert repl.run_script(["probe.wait", "say_hello Pat"]) == 0
    assert "stopped waiting for probe.wait" in out.getvalue()
    assert '"Hello, Pat!"' in out.getvalue()
    probe.release.set()


def test_reconnects_to_a_bus_started_again(home_bus: tuple[Bus, Probe]) -> None:
    bus, _ = home_bus
    address = bus.address
    assert address is not None
    client = Client.connect(str(address))
    running = Session(client)
    bus.close()
    running.out.wait_for("is lost")
    with Bus(name="home", control=address) as again:
        again.add_service(sample_services.Greeter())
        running.type("\r")  # the default answer: yes
        running.out.wait_for("reconnected to bus home")
        assert '"Hello, Quinn!"' in running.line("say_hello Quinn", 'Quinn!"')
        assert completions(running.repl, "lights.") == []  # the registry is the new bus's
        running.finish()
    running.repl.client.close()
    client.close()


def test_busctl_repl_names_a_bus_that_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from busctl.repl.command import repl

    runtime = Path(tempfile.mkdtemp(prefix="brp", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        result = CliRunner().invoke(repl, ["--bus", "nosuch"], input="")
        with Bus(name="one", control=True), Bus(name="two", control=True):
            several = CliRunner().invoke(repl, [], input="")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert result.exit_code == 3
    assert result.stderr == (
        "error: no bus named 'nosuch' is running; start one with `busctl run`\n"
    )
    assert several.exit_code == 3
    assert several.stderr == ("error: 2 buses are running (one, two): choose one with --bus NAME\n")


def test_link_refreshes_the_registry_in_the_background(
    client: Any, home_bus: tuple[Bus, Probe]
) -> None:
    from busctl.repl.complete import Registry
    from busctl.repl.link import Link

    bus, _ = home_bus

    class Watched(Registry):
        def __init__(self) -> None:
            super().__init__()
            self.updated = asyncio.Event()

        def update(self, snapshot: Any) -> bool:
            self.updated.set()
            return super().update(snapshot)

    class Late(Service):
        name = "late2"

        @command("late2.ping")
        def ping(self) -> str:
            return "pong"

    async def scenario() -> None:
        registry = Watched()
        link = Link(client, registry, learn_events=False)
        link.attach(asyncio.get_running_loop(), lambda: None)
        link.refresh_soon()  # just attached: fresh enough, nothing asked
        assert not link._refreshing
        bus.add_service(Late())
        registry.updated.clear()
        link.mark_stale()
        link.refresh_soon()
        await asyncio.wait_for(registry.updated.wait(), WAIT)
        assert "late2.ping" in registry.commands
        link.close()

    asyncio.run(scenario())
