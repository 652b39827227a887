"""The verbs that attach to a bus: ``run``, ``list``, ``status``, ``call``, ``monitor``...

    $ busctl run                       # the sample services, in one terminal
    $ busctl list                      # from another
    $ busctl call lights.turn_on kitchen brightness=60
    $ busctl emit motion.detected hall
    $ busctl monitor 'lights.*'
    $ busctl capture -o traces/today.jsonl --duration 10

``busctl.cli`` imports this module only when one of its verbs runs. Every verb
prints a one-line reason on stderr and exits non-zero (``ExitStatus``) when it
fails; ``-v`` adds the remote traceback.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from . import _output
from ._args import ArgumentError, parse_args
from ._client import Client, ConnectionLost, RemoteError
from ._exit import ExitStatus

if TYPE_CHECKING:
    from bus import Bus, Service

__all__ = [
    "call",
    "capture",
    "commands",
    "emit",
    "introspect",
    "list_buses",
    "listeners",
    "monitor",
    "run",
    "services",
    "status",
    "who_handles",
]

P = ParamSpec("P")
R = TypeVar("R")

_HINT_RUN = "start one with `busctl run`"


# -- shared options and failure handling ---------------------------------------


class Failure(Exception):
    """A verb failed: ``message`` goes to stderr as one line, ``status`` to the shell."""

    def __init__(self, message: str, status: ExitStatus, detail: str | None = None) -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


def _bus_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--bus",
        "target",
        metavar="NAME|PATH",
        help="The bus to attach to (default: $BUS_ADDRESS, else the one running).",
    )(fn)


def _json_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON only (for scripts).")(
        fn
    )


def _verbose_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "-v", "--verbose", is_flag=True, help="On failure, add the remote traceback."
    )(fn)


def _reports_failures(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure into one line on stderr and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        verbose = bool(kwargs.get("verbose"))
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:  # `busctl monitor | head`: the reader has had enough
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            sys.exit(ExitStatus.OK)
        except Failure as failure:
            _exit_with(failure, verbose)
        except Exception as exc:
            translated = _as_failure(exc)
            if translated is None:
                raise
            _exit_with(translated, verbose)

    return wrapper


def _exit_with(failure: Failure, verbose: bool) -> NoReturn:
    _output.error(str(failure))
    if failure.detail:
        if verbose:
            sys.stderr.write(failure.detail.rstrip() + "\n")
        elif failure.status is ExitStatus.FAILED:
            sys.stderr.write("(run with -v for the remote traceback)\n")
    sys.exit(failure.status)


def _as_failure(exc: Exception) -> Failure | None:
    """The ``Failure`` an exception from the client or the bus stands for."""
    from bus.control import AmbiguousBusError, NoBusError

    if isinstance(exc, NoBusError):
        message = str(exc)
        if "busctl run" not in message:
            message = f"{message}; {_HINT_RUN}"
        return Failure(message, ExitStatus.NO_BUS)
    if isinstance(exc, AmbiguousBusError):
        message = str(exc)
        if "--bus" not in message:
            message += "; choose one with --bus NAME"
        return Failure(message, ExitStatus.NO_BUS)
    if isinstance(exc, ConnectionLost):
        return Failure(str(exc), ExitStatus.NO_BUS)
    if isinstance(exc, ArgumentError):
        return Failure(f"bad argument: {exc}", ExitStatus.USAGE)
    if isinstance(exc, TimeoutError):
        return Failure(str(exc) or "timed out", ExitStatus.TIMEOUT)
    if isinstance(exc, RemoteError):
        return _remote_failure(exc)
    return None


_CODE_STATUS = {
    -32000: ExitStatus.FAILED,
    -32001: ExitStatus.NOT_FOUND,
    -32002: ExitStatus.USAGE,
    -32003: ExitStatus.NO_BUS,
    -32004: ExitStatus.TIMEOUT,
}


def _remote_failure(exc: RemoteError) -> Failure:
    status = _CODE_STATUS.get(exc.code, ExitStatus.ERROR)
    message = str(exc) if exc.code in (-32000, -32603) else exc.message
    suggestions = exc.data.get("suggestions")
    if suggestions and "did you mean" not in message:
        message += "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
    signature = exc.data.get("signature")
    if exc.code == -32002 and signature and str(signature) not in message:
        message += f" (signature: {signature})"
    if exc.code == -32004:
        message = f"{message} (the command may still finish; raise --timeout to wait longer)"
    return Failure(message, status, exc.remote_traceback)


@contextlib.contextmanager
def _attached(target: str | None) -> Iterator[Client]:
    client = Client.connect(target)
    try:
        yield client
    finally:
        client.close()


def _attached_command(fn: Callable[P, R]) -> Callable[P, R]:
    """The common options of a verb that reads from one bus and may print JSON."""
    return _bus_option(_json_option(_verbose_option(_reports_failures(fn))))


# -- run -------------------------------------------------------------------------


@click.command("run")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--name", help="The bus name (default: sample, or the first target's name).")
@click.option(
    "--address",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Listen on this socket path instead of the default directory.",
)
@_verbose_option
@_reports_failures
def run(targets: tuple[str, ...], name: str | None, address: Path | None, verbose: bool) -> None:
    """Host services on a bus that busctl can attach to.

    A TARGET is a module (its start(bus) function, else every Service class it
    defines), a file path (the same, from a .py file), or module:Class. With no
    TARGET, the sample services run. Stops cleanly on Ctrl-C or SIGTERM: every
    service's on_stop runs and the socket is removed.
    """
    from bus import Bus

    loaded = [(target, _load_target(target)) for target in targets]
    bus_name = name or (_target_name(targets[0]) if targets else "sample")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            bus = Bus(name=bus_name, control=address if address is not None else True)
        except Exception as exc:
            raise Failure(f"cannot start bus {bus_name!r}: {exc}", ExitStatus.ERROR) from exc
        try:
            started = _start_targets(bus, loaded)
            names = ", ".join(s.service_name() for s in started) or "none"
            out = _output.console()
            bus_flag = f" --bus {bus.address}" if address is not None else ""
            out.print(
                f"bus {bus_name} listening on {bus.address} (pid {bus.pid})\n"
                f"services: {names}\n"
                f"from another terminal: busctl status{bus_flag}, busctl monitor{bus_flag}, "
                f"busctl repl{bus_flag}; Ctrl-C stops",
                markup=False,
                highlight=False,
            )
            sys.stdout.flush()
            while not stop.wait(0.5):
                if bus.closed:
                    break
        finally:
            bus.close()
        _output.console().print(f"bus {bus_name} stopped", markup=False, highlight=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _target_name(target: str) -> str:
    base = target.partition(":")[0]
    return Path(base).stem if base.endswith(".py") else base.rsplit(".", 1)[-1]


def _load_target(target: str) -> Callable[[Bus], list[Service]]:
    """What to do with the bus for ``target``: a function adding its services."""
    module_part, _, attribute = target.partition(":")
    module = _import_target(module_part)
    if attribute:
        try:
            obj = functools.reduce(getattr, attribute.split("."), module)
        except AttributeError:
            raise Failure(
                f"module {module.__name__!r} has no {attribute!r}", ExitStatus.USAGE
            ) from None
        return _starter(obj, target)
    start = getattr(module, "start", None)
    if callable(start):
        return _starter(start, target)
    from bus import Service

    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Service)
        and obj is not Service
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if not classes:
        raise Failure(
            f"{target!r} defines no Service class and no start(bus) function; "
            "use 'module:Class' to name one",
            ExitStatus.USAGE,
        )

    def start_all(bus: Bus) -> list[Service]:
        return [bus.add_service(cls()) for cls in classes]

    return start_all


def _import_target(spec: str) -> ModuleType:
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise Failure(f"no such file: {spec}", ExitStatus.USAGE)
        module_name = f"busctl_run_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise Failure(f"cannot load {spec} as Python", ExitStatus.USAGE)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        if str(path.parent.resolve()) not in sys.path:
            sys.path.insert(0, str(path.parent.resolve()))
        loader_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise Failure(
                f"no module named {spec!r}; give a module, a .py file or module:Class",
                ExitStatus.USAGE,
            ) from None
        raise


def _starter(obj: Any, target: str) -> Callable[[Bus], list[Service]]:
    from bus import Service

    if inspect.isclass(obj) and issubclass(obj, Service):
        return lambda bus: [bus.add_service(obj())]
    if isinstance(obj, Service):
        return lambda bus: [bus.add_service(obj)]
    if callable(obj):

        def call_start(bus: Bus) -> list[Service]:
            result = obj(bus)
            if isinstance(result, Service):
                return [result]
            if isinstance(result, list | tuple):
                return [s for s in result if isinstance(s, Service)]
            return []

        return call_start
    raise Failure(
        f"{target!r} is not a Service class, a Service or a start(bus) function",
        ExitStatus.USAGE,
    )


def _start_targets(
    bus: Bus, loaded: list[tuple[str, Callable[[Bus], list[Service]]]]
) -> list[Service]:
    if not loaded:
        import sample_services

        return sample_services.start(bus)
    started: list[Service] = []
    for target, start in loaded:
        try:
            started.extend(start(bus))
        except Exception as exc:
            raise Failure(
                f"starting {target!r} failed: {type(exc).__name__}: {exc}", ExitStatus.ERROR
            ) from exc
    return started


# -- list, status, the registries -------------------------------------------------


@click.command("list")
@_json_option
@_verbose_option
@_reports_failures
def list_buses(as_json: bool, verbose: bool) -> None:
    """List the running buses that can be attached."""
    from bus.control import discover, socket_dir

    buses = sorted(discover(), key=lambda b: str(b.get("name", "")))
    if as_json:
        _output.print_json(buses)
        return
    if not buses:
        _output.console(stderr=True).print(
            f"no bus running in {socket_dir()}; {_HINT_RUN}", markup=False
        )
        return
    now = time.time()
    rows = [
        [
            b.get("name"),
            b.get("pid"),
            _output.duration(now - float(b["started_at"])) if b.get("started_at") else "-",
            b.get("version", ""),
            b.get("address", ""),
        ]
        for b in buses
    ]
    _output.table(["NAME", "PID", "UPTIME", "VERSION", "ADDRESS"], rows, right=["PID"])


@click.command("status")
@_attached_command
def status(target: str | None, as_json: bool, verbose: bool) -> None:
    """Show one bus: name, pid, uptime, counts, totals."""
    with _attached(target) as client:
        snapshot = client.inspect()
    bus, totals, tracing = snapshot["bus"], snapshot["totals"], snapshot.get("tracing", {})
    if as_json:
        _output.print_json(
            {"bus": bus, "address": str(client.address), "totals": totals, "tracing": tracing}
        )
        return
    spans = {k: v for k, v in tracing.items() if k != "enabled" and isinstance(v, int | float)}
    _output.fields(
        [
            ("bus", bus["name"]),
            ("address", client.address),
            ("pid", bus["pid"]),
            ("state", bus.get("state")),
            ("uptime", _output.duration(bus.get("uptime"))),
            (
                "registry",
                f"{totals['services']} services, {totals['commands']} commands, "
                f"{totals['listeners']} listeners",
            ),
            ("handled", totals["handled"]),
            ("failed", totals["failed"]),
            ("rejected", totals["rejected"]),
            ("dropped", totals["dropped"]),
            ("late replies", totals["late_replies"]),
            ("hung threads", totals["hung"]),
            ("tracing", "on" if tracing.get("enabled") else "off"),
            *((f"  {k.replace('_', ' ')}", v) for k, v in sorted(spans.items())),
        ]
    )


@click.command("services")
@_attached_command
def services(target: str | None, as_json: bool, verbose: bool) -> None:
    """List the services of a bus."""
    with _attached(target) as client:
        rows = client.inspect()["services"]
    if as_json:
        _output.print_json(rows)
        return
    _output.table(
        ["NAME", "STATE", "ACTIVITY", "THREADS", "MAILBOX", "HANDLED", "FAILED", "DROPPED"],
        [
            [
                s["name"],
                s["state"]
                + (" (hung)" if any(t.get("hung") for t in s.get("threads", ())) else ""),
                s.get("activity", ""),
                ", ".join(t["name"] for t in s.get("threads", ())),
                f"{s['mailbox']}/{s['mailbox_size']}",
                s["handled"],
                s["failed"],
                s.get("rejected", 0) + s.get("dropped", 0),
            ]
            for s in rows
        ],
        right=["MAILBOX", "HANDLED", "FAILED", "DROPPED"],
    )


def _hung(service: dict[str, Any]) -> bool:
    return any(thread.get("hung") for thread in service.get("threads", ()))


@click.command("commands")
@_attached_command
def commands(target: str | None, as_json: bool, verbose: bool) -> None:
    """List the commands of a bus."""
    with _attached(target) as client:
        rows = client.inspect()["commands"]
    if as_json:
        _output.print_json(rows)
        return
    _output.table(
        ["NAME", "OWNER", "SIGNATURE", "CALLS", "ERRORS", "P50", "P99"],
        [
            [
                c["name"],
                c["owner"],
                c["signature"],
                c["calls"],
                c["errors"],
                _output.latency(c.get("p50_ms")),
                _output.latency(c.get("p99_ms")),
            ]
            for c in rows
        ],
        right=["CALLS", "ERRORS", "P50", "P99"],
    )


@click.command("listeners")
@_attached_command
def listeners(target: str | None, as_json: bool, verbose: bool) -> None:
    """List the listeners of a bus, in delivery order."""
    with _attached(target) as client:
        rows = client.inspect()["listeners"]
    if as_json:
        _output.print_json(rows)
        return
    _output.table(
        ["PATTERN", "OWNER", "HANDLER", "SIGNATURE", "DELIVERIES", "ERRORS", "P50"],
        [
            [
                entry["pattern"],
                entry["owner"],
                entry["handler"],
                entry["signature"],
                entry["deliveries"],
                entry["errors"],
                _output.latency(entry.get("p50_ms")),
            ]
            for entry in sorted(rows, key=lambda entry: entry.get("order", 0))
        ],
        right=["DELIVERIES", "ERRORS", "P50"],
    )


# -- introspect, who-handles --------------------------------------------------------


@click.command("introspect")
@click.argument("name")
@_attached_command
def introspect(name: str, target: str | None, as_json: bool, verbose: bool) -> None:
    """Show a command's signature, doc and stats."""
    with _attached(target) as client:
        routing = client.who_handles(name)
        snapshot = client.inspect() if routing.get("command") else None
    entry = routing.get("command")
    if entry is None:
        raise _nothing_handles(name, routing, as_command=True)
    threads = _threads_of(entry, snapshot)
    if as_json:
        _output.print_json({**entry, "threads": threads})
        return
    _output.fields(
        [
            ("command", entry["name"]),
            ("signature", f"{entry['name']}{entry['signature']}"),
            ("owner", entry["owner"]),
            ("handler", entry.get("handler")),
            ("threads", ", ".join(threads) or "-"),
            ("readonly", "yes" if entry.get("readonly") else "no"),
            ("calls", entry.get("calls")),
            ("errors", entry.get("errors")),
            ("in flight", entry.get("in_flight")),
            (
                "latency",
                f"p50 {_output.latency(entry.get('p50_ms'))}, "
                f"p99 {_output.latency(entry.get('p99_ms'))}",
            ),
            *([("last error", entry["last_error"])] if entry.get("last_error") else []),
        ]
    )
    params = entry.get("params") or []
    if params:
        _output.table(
            ["PARAMETER", "KIND", "TYPE", "DEFAULT"],
            [
                [
                    p["name"],
                    p.get("kind", ""),
                    p.get("annotation") or "",
                    "(required)" if p.get("required") else _default_text(p.get("default")),
                ]
                for p in params
            ],
        )
    doc = entry.get("doc")
    if doc:
        _output.console().print("\n" + doc, markup=False, highlight=False)


def _default_text(default: Any) -> str:
    return default if isinstance(default, str) else json.dumps(default)


def _threads_of(entry: dict[str, Any], snapshot: dict[str, Any] | None) -> list[str]:
    if isinstance(entry.get("threads"), list):
        return [str(t.get("name", t)) if isinstance(t, dict) else str(t) for t in entry["threads"]]
    if isinstance(entry.get("thread"), str):
        return [entry["thread"]]
    for service in (snapshot or {}).get("services", []):
        if service["name"] == entry.get("owner"):
            return [t["name"] for t in service.get("threads", [])]
    return []


def _nothing_handles(name: str, routing: dict[str, Any], *, as_command: bool) -> Failure:
    suggestions = routing.get("suggestions") or []
    hint = (
        "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?" if suggestions else ""
    )
    count = len(routing.get("listeners") or [])
    if as_command and count:
        return Failure(
            f"{name!r} is not a command; {count} listener{'s' if count != 1 else ''} "
            f"match it as an event (see `busctl who-handles {name}`)",
            ExitStatus.NOT_FOUND,
        )
    what = "no command named" if as_command else "nothing handles"
    return Failure(f"{what} {name!r}{hint}", ExitStatus.NOT_FOUND)


@click.command("who-handles")
@click.argument("name")
@_attached_command
def who_handles(name: str, target: str | None, as_json: bool, verbose: bool) -> None:
    """Show exactly which handlers a command or event name reaches.

    For a command: its owner, thread and signature. For an event: every
    listener whose pattern matches, in delivery order.
    """
    with _attached(target) as client:
        routing = client.who_handles(name)
        entry = routing.get("command")
        snapshot = client.inspect() if entry else None
    found = routing.get("listeners") or []
    if as_json:
        if entry:
            routing = {**routing, "command": {**entry, "threads": _threads_of(entry, snapshot)}}
        _output.print_json(routing)
    if entry is None and not found:
        raise _nothing_handles(name, routing, as_command=False)
    if as_json:
        return
    out = _output.console()
    if entry:
        threads = ", ".join(_threads_of(entry, snapshot)) or "-"
        out.print(f"command {name}", markup=False, highlight=False)
        _output.fields(
            [
                ("  owner", entry["owner"]),
                ("  thread", threads),
                ("  handler", entry.get("handler")),
                ("  signature", f"{name}{entry['signature']}"),
            ]
        )
    else:
        out.print(f"command {name}: none", markup=False, highlight=False)
    if found:
        title = f"event {name}: {len(found)} listener{'s' if len(found) != 1 else ''}"
        out.print(title + ", in delivery order", markup=False, highlight=False)
        _output.table(
            ["#", "PATTERN", "OWNER", "HANDLER", "SIGNATURE"],
            [
                [i, f["pattern"], f["owner"], f.get("handler", ""), f.get("signature", "")]
                for i, f in enumerate(found, start=1)
            ],
            right=["#"],
        )
    else:
        out.print(f"event {name}: no listeners", markup=False, highlight=False)


# -- call, emit ---------------------------------------------------------------------

_PASS_THROUGH = {"ignore_unknown_options": True}  # so `call f -1` reads -1 as an argument


@click.command("call", context_settings=_PASS_THROUGH)
@click.argument("name")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED, metavar="[ARG]...")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the result.",
)
@_attached_command
def call(
    name: str,
    arguments: tuple[str, ...],
    timeout: float,
    target: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Execute a command and print its result.

    Each ARG is JSON or a Python literal (a bare word is a string);
    key=value passes a keyword argument. Nothing is ever eval'd.

    \b
      busctl call say_hello Alice
      busctl call lights.turn_on kitchen brightness=60
      busctl call notify.send '{"to": "me"}' "'hello there'"
    """
    args, kwargs = parse_args(list(arguments))
    with _attached(target) as client:
        try:
            result = client.execute(name, args, kwargs, timeout=timeout)
        except RemoteError as exc:
            if exc.code == -32000:
                raise Failure(
                    f"{name} raised {exc}", ExitStatus.FAILED, exc.remote_traceback
                ) from exc
            raise
    if as_json:
        _output.print_json(result)
    else:
        _output.print_value(result)


@click.command("emit", context_settings=_PASS_THROUGH)
@click.argument("name")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED, metavar="[ARG]...")
@_attached_command
def emit(
    name: str, arguments: tuple[str, ...], target: str | None, as_json: bool, verbose: bool
) -> None:
    """Fire an event (arguments as for `call`); print how many listeners it reached."""
    args, kwargs = parse_args(list(arguments))
    with _attached(target) as client:
        count = client.fire(name, args, kwargs)
    if as_json:
        _output.print_json({"name": name, "listeners": count})
        return
    plural = "s" if count != 1 else ""
    _output.console().print(
        f"fired {name} to {count} listener{plural}", markup=False, highlight=False
    )


# -- monitor, capture -----------------------------------------------------------------


@contextlib.contextmanager
def _until_stopped() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM, for the verbs that run until stopped."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drain(
    client: Client,
    notes: queue.Queue[tuple[str, dict[str, Any]]],
    stop: threading.Event,
    deadline: float | None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Notifications until stopped, the deadline, or the bus going away."""
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return
        try:
            yield notes.get(timeout=0.1)
        except queue.Empty:
            if client.closed:
                raise Failure(
                    f"bus {client.name} went away ({client.error or 'connection closed'})",
                    ExitStatus.NO_BUS,
                ) from None


@click.command("monitor")
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option("-n", "--count", type=click.IntRange(min=1), help="Stop after this many lines.")
@_attached_command
def monitor(
    patterns: tuple[str, ...],
    count: int | None,
    target: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Show live traffic, one line per command or event, until Ctrl-C.

    PATTERNs are names or globs (`lights.*`); default all. --json writes one
    activity record per line.
    """
    notes: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    out = _output.console()
    colour = out.is_terminal and not out.no_color
    shown = 0
    with _until_stopped() as stop, _attached(target) as client:
        subscription = client.subscribe(
            "activity", lambda m, p: notes.put((m, p)), patterns or ("*",)
        )
        if not as_json:
            watched = " ".join(patterns) or "everything"
            _output.console(stderr=True).print(
                f"monitoring {watched} on bus {client.name}; Ctrl-C to stop",
                markup=False,
                highlight=False,
            )
        for method, params in _drain(client, notes, stop, None):
            if method == "dropped":
                _output.console(stderr=True).print(
                    f"... {params.get('count')} notifications dropped (reading too slowly)",
                    markup=False,
                )
                continue
            activity = params.get("activity")
            if not isinstance(activity, dict):
                continue
            if as_json:
                sys.stdout.write(json.dumps(activity, separators=(",", ":")) + "\n")
                sys.stdout.flush()
            else:
                out.print(
                    _output.activity_line(activity, colour=colour),
                    markup=colour,
                    highlight=False,
                    soft_wrap=True,
                )
            shown += 1
            if count is not None and shown >= count:
                break
        subscription.close()


@click.command("capture")
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="The trace file to write (OTLP JSON lines); - for stdout.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: at Ctrl-C).",
)
@_bus_option
@_verbose_option
@_reports_failures
def capture(
    patterns: tuple[str, ...],
    output: Path,
    duration: float | None,
    target: str | None,
    verbose: bool,
) -> None:
    """Record traffic to a trace file, until Ctrl-C or --duration.

    Writes one OTLP TracesData JSON object per line (the OpenTelemetry file
    exporter's format), readable by `busctl trace` and by OTel tools.
    PATTERNs keep only spans of matching command or event names.
    """
    notes: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    spans = 0
    traces: set[str] = set()
    dropped = 0
    to_stdout = str(output) == "-"
    report = _output.console(stderr=True)
    with contextlib.ExitStack() as stack:
        if to_stdout:
            sink = sys.stdout
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(output.open("w", encoding="utf-8"))
        stop = stack.enter_context(_until_stopped())
        client = stack.enter_context(_attached(target))
        subscription = client.subscribe("spans", lambda m, p: notes.put((m, p)), patterns or ("*",))
        until = f"for {_output.duration(duration)}" if duration else "until Ctrl-C"
        report.print(
            f"capturing spans of bus {client.name} to {output} {until}",
            markup=False,
            highlight=False,
        )
        deadline = None if duration is None else time.monotonic() + duration

        def write(params: dict[str, Any]) -> None:
            nonlocal spans
            data = params.get("data")
            if not isinstance(data, dict):
                return
            sink.write(json.dumps(data, separators=(",", ":")) + "\n")
            sink.flush()
            for span in _spans_of(data):
                spans += 1
                traces.add(str(span.get("traceId", "")))

        try:
            for method, params in _drain(client, notes, stop, deadline):
                if method == "dropped":
                    dropped = int(params.get("total", dropped + int(params.get("count", 0))))
                elif method == "spans":
                    write(params)
        finally:
            dropped = max(dropped, subscription.close())
            while not notes.empty():  # what arrived before the unsubscribe reply
                method, params = notes.get_nowait()
                if method == "spans":
                    write(params)
            lost = f", {dropped} dropped (the bus could not send them in time)" if dropped else ""
            report.print(
                f"captured {spans} span{'s' if spans != 1 else ''} in {len(traces)} "
                f"trace{'s' if len(traces) != 1 else ''} to {output}{lost}",
                markup=False,
                highlight=False,
            )


def _spans_of(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in data.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            yield from scope.get("spans", [])
