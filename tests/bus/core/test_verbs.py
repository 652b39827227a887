"""The four verbs, registrations, services starting and stopping, the newcomer's style."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from bus import (
    Bus,
    BusClosedError,
    CommandFuture,
    Registration,
    Service,
    ServiceFailedError,
    command,
    current_event,
    listener,
)
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


class Greeter(Service):
    def __init__(self) -> None:
        super().__init__()
        self.greeted: list[str] = []
        self.threads: dict[str, str] = {}

    def on_start(self) -> None:
        self.threads["on_start"] = threading.current_thread().name

    def on_stop(self) -> None:
        self.threads["on_stop"] = threading.current_thread().name

    @command("say_hello", readonly=True)
    def say_hello(self, name: str) -> str:
        """Greet someone."""
        self.threads["say_hello"] = threading.current_thread().name
        return f"Hello, {name}!"

    @listener("greet_event")
    def on_greet(self, name: str) -> None:
        self.greeted.append(name)


def test_execute_command_returns_a_future_of_the_result(bus: Bus) -> None:
    bus.register_command("add", lambda a, b: a + b)

    future = bus.execute_command("add", 2, b=3)

    assert isinstance(future, Future)
    assert isinstance(future, CommandFuture)
    assert future.result(timeout=5) == 5
    assert future.command == "add"
    assert future.service == "pool"


def test_fire_event_returns_none_and_reaches_every_listener(bus: Bus) -> None:
    got: list[tuple[str, object]] = []
    done = threading.Barrier(3, timeout=5)

    def first(x: object) -> None:
        got.append(("first", x))
        done.wait()

    def second(x: object) -> None:
        got.append(("second", x))
        done.wait()

    bus.register_listener("ping", first)
    bus.register_listener("ping", second)

    assert bus.fire_event("ping", 42) is None
    done.wait()
    assert sorted(got) == [("first", 42), ("second", 42)]


def test_fire_event_without_listeners_is_fine(bus: Bus) -> None:
    bus.fire_event("nobody.listens", 1)
    wait_idle(bus)
    assert bus.inspect()["totals"]["dropped"] == 0


def test_registration_dispose_frees_the_name_and_is_idempotent(bus: Bus) -> None:
    registration = bus.register_command("echo", lambda x: x)
    assert isinstance(registration, Registration)
    assert (registration.name, registration.kind, registration.disposed) == (
        "echo",
        "command",
        False,
    )

    registration.dispose()
    registration.dispose()

    assert registration.disposed
    assert "echo" not in [c["name"] for c in bus.inspect()["commands"]]
    bus.register_command("echo", lambda x: x * 2)
    assert bus.execute_command("echo", 4).result(timeout=5) == 8


def test_disposed_listener_is_no_longer_called(bus: Bus) -> None:
    got: list[int] = []
    with bus.register_listener("tick", got.append) as registration:
        bus.fire_event("tick", 1)
        wait_idle(bus)
    assert registration.disposed
    bus.fire_event("tick", 2)
    wait_idle(bus)
    assert got == [1]


def test_context_manager_closes_the_bus_and_joins_its_threads(
    live_bus_threads: Callable[[str], list[threading.Thread]],
) -> None:
    with Bus(name="ctx") as b:
        b.add_service(Greeter())
        b.register_command("x", lambda: 1)
        assert b.execute_command("x").result(timeout=5) == 1
        assert live_bus_threads("ctx")
    assert b.closed
    assert live_bus_threads("ctx") == []
    with pytest.raises(BusClosedError):
        b.execute_command("x")
    with pytest.raises(BusClosedError):
        b.fire_event("greet_event", "late")


def test_add_service_returns_ready_with_handlers_registered(bus: Bus) -> None:
    greeter = Greeter()

    assert bus.add_service(greeter) is greeter

    # No start-up race: the command and listener are there the moment it returns.
    assert greeter.bus is bus
    assert bus.execute_command("say_hello", "Alice").result(timeout=5) == "Hello, Alice!"
    bus.fire_event("greet_event", "Bob")
    wait_idle(bus)
    assert greeter.greeted == ["Bob"]
    service = next(s for s in bus.inspect()["services"] if s["name"] == "greeter")
    assert service["state"] == "running"
    assert service["class"] == "Greeter"


def test_on_start_and_handlers_and_on_stop_run_on_the_service_thread() -> None:
    greeter = Greeter()
    with Bus(name="own") as b:
        b.add_service(greeter)
        assert greeter.threads["on_start"] == "bus:own/greeter"
        b.execute_command("say_hello", "A").result(timeout=5)
    assert greeter.threads == {
        "on_start": "bus:own/greeter",
        "say_hello": "bus:own/greeter",
        "on_stop": "bus:own/greeter",
    }


def test_on_start_may_register_handlers_that_stay_on_the_service(bus: Bus) -> None:
    class Dynamic(Service):
        def on_start(self) -> None:
            self.bus.register_command("where", lambda: threading.current_thread().name)

    bus.add_service(Dynamic())

    assert bus.execute_command("where").result(timeout=5) == "bus:test/dynamic"


def test_on_start_failure_raises_and_cleans_up(
    bus: Bus, live_bus_threads: Callable[[str], list[threading.Thread]]
) -> None:
    class Broken(Service):
        @command("broken.cmd")
        def cmd(self) -> int:
            return 1

        def on_start(self) -> None:
            self.bus.register_command("broken.extra", lambda: 2)
            raise RuntimeError("cannot start")

    broken = Broken()
    with pytest.raises(RuntimeError, match="cannot start"):
        bus.add_service(broken)

    snapshot = bus.inspect()
    assert [s["name"] for s in snapshot["services"]] == []
    assert snapshot["commands"] == []
    assert broken.bus is None
    # The thread ends; the name is free again.
    for thread in live_bus_threads("test"):
        if thread.name == "bus:test/broken":
            thread.join(5)
    assert all(t.name != "bus:test/broken" for t in live_bus_threads("test"))
    assert bus.add_service(Service(name="broken")).service_name() == "broken"


def test_work_queued_while_on_start_fails_is_failed_not_left_pending(bus: Bus) -> None:
    """A command sent during on_start (its handlers are already registered) must not hang."""
    starting = threading.Event()
    fail = threading.Event()

    class Slow(Service):
        @command("slow.cmd")
        def cmd(self) -> int:
            return 1

        def on_start(self) -> None:
            starting.set()
            fail.wait(5)
            raise RuntimeError("gave up starting")

    errors: list[BaseException] = []
    adder = threading.Thread(target=lambda: _add_catching(bus, Slow(), errors))
    adder.start()
    assert starting.wait(5)
    future = bus.execute_command("slow.cmd")
    fail.set()
    adder.join(5)

    assert [type(e) for e in errors] == [RuntimeError]
    with pytest.raises(ServiceFailedError, match="its on_start raised RuntimeError: gave up"):
        future.result(timeout=5)
    assert bus.wait_idle(5)


def _add_catching(bus: Bus, service: Service, errors: list[BaseException]) -> None:
    try:
        bus.add_service(service)
    except BaseException as exc:
        errors.append(exc)


def test_duplicate_service_name_is_refused(bus: Bus) -> None:
    bus.add_service(Greeter())
    with pytest.raises(ValueError, match="already on the bus"):
        bus.add_service(Greeter())


def test_service_name_defaults_to_snake_case_without_suffix(bus: Bus) -> None:
    class KitchenLightsService(Service):
        pass

    assert KitchenLightsService().service_name() == "kitchen_lights"
    assert Service(name="custom").service_name() == "custom"


def test_newcomer_style_plain_thread_registers_and_is_called() -> None:
    """A class that starts a plain threading.Thread which registers on the bus."""
    greeted: list[str] = []
    threads: dict[str, str] = {}

    class Newcomer:
        def __init__(self, bus: Bus) -> None:
            self.bus = bus
            self.ready = threading.Event()
            self.thread = threading.Thread(target=self.run, name="newcomer")
            self.thread.start()

        def run(self) -> None:
            self.bus.register_command("say_hello", self.say_hello)
            self.bus.register_listener("greet_event", self.on_greet)
            self.ready.set()

        def say_hello(self, name: str) -> str:
            threads["say_hello"] = threading.current_thread().name
            return f"Hello, {name}!"

        def on_greet(self, name: str) -> None:
            threads["greet_event"] = threading.current_thread().name
            greeted.append(name)

    with Bus(name="newbie") as b:
        newcomer = Newcomer(b)
        assert newcomer.ready.wait(5)
        newcomer.thread.join(5)

        assert b.execute_command("say_hello", "Alice").result() == "Hello, Alice!"
        b.fire_event("greet_event", "Bob")
        wait_idle(b)

    assert greeted == ["Bob"]
    # Registered from a thread that is no service: both ran on the shared pool.
    assert threads["say_hello"].startswith("bus:newbie/pool")
    assert threads["greet_event"].startswith("bus:newbie/pool")


def test_close_is_idempotent_and_state_is_reported(bus: Bus) -> None:
    assert bus.inspect()["bus"]["state"] == "running"
    bus.close()
    bus.close()
    assert bus.closed
    assert bus.inspect()["bus"]["state"] == "closed"
    with pytest.raises(BusClosedError):
        bus.register_command("late", lambda: None)
    with pytest.raises(BusClosedError):
        bus.register_listener("late", lambda: None)
    with pytest.raises(BusClosedError):
        bus.add_service(Greeter())


def test_close_from_a_handler_returns_and_the_bus_closes(
    live_bus_threads: Callable[[str], list[threading.Thread]],
) -> None:
    b = Bus(name="selfclose")
    b.register_command("shutdown", lambda: b.close())
    assert b.execute_command("shutdown").result(timeout=5) is None
    for thread in live_bus_threads("selfclose"):
        thread.join(10)
    assert live_bus_threads("selfclose") == []
    assert b.closed
    b.close()


def test_newcomer_thread_registers_then_calls_and_fires_itself(bus: Bus) -> None:
    """All four verbs from one plain thread, the order a newcomer writes them in."""
    outcome: dict[str, object] = {}
    greeted = threading.Event()

    def main() -> None:
        bus.register_command("say_hello", lambda name: f"Hello, {name}!")
        bus.register_listener("greet_event", lambda name: greeted.set())
        outcome["result"] = bus.execute_command("say_hello", "Alice").result()
        outcome["fired"] = bus.fire_event("greet_event", "Bob")

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(10)

    assert outcome == {"result": "Hello, Alice!", "fired": None}
    assert greeted.wait(5)


def test_decorator_forms_and_stacked_listeners(bus: Bus) -> None:
    heard: list[tuple[str, str]] = []

    class Forms(Service):
        @command
        def plain(self) -> str:
            return "named after the method"

        @command()
        def called(self) -> str:
            return "also the method name"

        @listener("a.one")
        @listener("b.*")
        def both(self, x: str) -> None:
            event = current_event()
            assert event is not None
            heard.append((event.pattern, x))

    bus.add_service(Forms())

    assert bus.execute_command("plain").result(timeout=5) == "named after the method"
    assert bus.execute_command("called").result(timeout=5) == "also the method name"
    bus.fire_event("a.one", "1")
    bus.fire_event("b.two", "2")
    wait_idle(bus)
    assert sorted(heard) == [("a.one", "1"), ("b.*", "2")]


def test_bad_services_are_refused(bus: Bus, make_bus: Callable[..., Bus]) -> None:
    with pytest.raises(ValueError, match="concurrency must be between 1 and 1024, not 0"):
        bus.add_service(Service(name="zero", concurrency=0))
    with pytest.raises(TypeError, match="takes a Service"):
        bus.add_service(object())  # type: ignore[arg-type]
    shared = Service(name="shared")
    bus.add_service(shared)
    with pytest.raises(ValueError, match="already on bus 'test'"):
        make_bus(name="other").add_service(shared)


def test_a_service_whose_on_start_times_out_runs_whole_once_it_returns(bus: Bus) -> None:
    release = threading.Event()

    class Late(Service):
        concurrency = 2

        def on_start(self) -> None:
            release.wait(10)

        @command("late.ping")
        def ping(self) -> str:
            return "pong"

    with pytest.raises(TimeoutError, match=r"service 'late' did not start within 0.05s"):
        bus.add_service(Late(), timeout=0.05)
    (late,) = [s for s in bus.inspect()["services"] if s["name"] == "late"]
    assert late["state"] == "starting"
    future = bus.execute_command("late.ping")  # queued until on_start returns
    release.set()
    assert future.result(timeout=10) == "pong"
    assert bus.wait_idle(10)
    (late,) = [s for s in bus.inspect()["services"] if s["name"] == "late"]
    assert late["state"] == "running"
    assert len(late["threads"]) == 2


# -- arguments that do not bind: every problem in one message -----------------------------


def test_a_misspelt_keyword_names_the_missing_and_the_unexpected_with_a_suggestion(
    bus: Bus,
) -> None:
    bus.add_service(Greeter())
    with pytest.raises(TypeError) as info:
        bus.execute_command("say_hello", nme="Bob")
    assert str(info.value) == (
        "say_hello(name: str) -> str: missing required argument 'name'; "
        "unexpected keyword argument 'nme' (did you mean 'name'?)"
    )


def test_a_positional_only_name_given_as_a_keyword_goes_to_kwargs_as_in_a_call(
    bus: Bus,
) -> None:
    # Python puts it in **kwargs (PEP 570); inspect's bind before 3.13
    # refused it, and so did the bus, though the handler would have run.
    def options(level: int = 0, /, **more: int) -> tuple[int, dict[str, int]]:
        return level, more

    bus.register_command("options", options)
    assert bus.execute_command("options", level=5).result(5) == (0, {"level": 5})
    assert bus.execute_command("options", 2, level=5).result(5) == (2, {"level": 5})

    def needs(level: int, /, **more: int) -> None:
        pass

    bus.register_command("needs", needs)
    with pytest.raises(TypeError, match=r": missing required argument 'level'$"):
        bus.execute_command("needs", level=5)  # as the call: level itself is missing


def test_every_binding_problem_is_reported_at_once(bus: Bus) -> None:
    def place(room: str, level: int, /, colour: str, *, shade: int = 0) -> None:
        pass

    bus.register_command("place", place)
    with pytest.raises(TypeError) as info:
        bus.execute_command("place", "hall", level=2, shde=1, colour="red", extra=3)
    assert str(info.value) == (
        "place(room: str, level: int, /, colour: str, *, shade: int = 0) -> None: "
        "missing required argument 'level'; "
        "'level' is positional-only: give it by position, not as level=; "
        "unexpected keyword argument 'shde' (did you mean 'shade'?); "
        "unexpected keyword argument 'extra'"
    )
    with pytest.raises(TypeError) as info:
        bus.execute_command("place", "hall", 1, "red", "blue", colour="green")
    assert str(info.value).endswith(
        ": too many positional arguments: takes 3, got 4; multiple values for argument 'colour'"
    )
    bus.register_command("opt", lambda x=1: x)
    with pytest.raises(TypeError, match=r": too many positional arguments: takes 0 to 1, got 2$"):
        bus.execute_command("opt", 1, 2)
