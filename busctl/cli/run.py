"""``busctl run``: host services on a bus with the control endpoint.

    $ busctl run                                  # the sample services
    $ busctl run my_app.services                  # start(bus), else every Service class
    $ busctl run ./house.py sample_services.greeter:Greeter --name home
    $ busctl run --nats embedded --name home      # a private nats-server, its URL printed
    $ busctl run --nats nats://127.0.0.1:4222 --name home sample_services.lights

It stops cleanly on Ctrl-C or SIGTERM: the bus closes, so every service's
``on_stop`` runs, and the socket file is removed (with ``--nats embedded``,
the server it started stops too).

With ``--nats URL`` the services join bus NAME on that NATS server, with
every other process there (``docs/distributed.md``), and the console attaches
with ``--nats URL --bus NAME``: the control protocol travels over NATS, so no
socket is served unless ``--address`` asks for one.

A TARGET that cannot be loaded (no such module or file, a syntax error, an
exception at import, no such class, a class that needs arguments) is one line
naming the file and line, exit status 2; one whose services fail to start
(``on_start`` raised, a name taken twice) is one line, exit status 1. ``-v``
adds the traceback.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import math
import os
import signal
import sys
import sysconfig
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

import click

from .._exit import ExitStatus
from . import _output
from .options import Failure, reports_failures, verbose_option

if TYPE_CHECKING:
    from bus import Bus, Service

    from .._nats_server import EmbeddedServer

__all__ = ["run"]


class _Seconds(click.FloatRange):
    """A positive, finite number of seconds (``FloatRange`` lets ``inf`` and ``nan`` by)."""

    name = "number of seconds"

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds.", param, ctx)
        return seconds


@click.command("run")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--name", help="The bus name (default: sample, or the first target's name).")
@click.option(
    "--address",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Listen on this socket path instead of the default directory.",
)
@click.option(
    "--nats",
    "nats",
    metavar="URL|embedded",
    envvar="BUS_NATS_URL",
    help="Join bus NAME on this NATS server, with every process there; 'embedded' starts "
    "a private nats-server on 127.0.0.1 and prints its URL (default: $BUS_NATS_URL).",
)
@click.option(
    "--remote-timeout",
    type=_Seconds(),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="With --nats: the deadline of a call to another process.",
)
@click.option(
    "--peer-timeout",
    type=_Seconds(),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="With --nats: the silence after which another process is taken for gone "
    "(the calls it took fail then); this one beats every fifth of it.",
)
@click.option(
    "--trace-lossless",
    "lossless",
    is_flag=True,
    help="Never drop a span: a thread recording one waits for room in the trace "
    "buffer (Bus(trace_overflow='wait')).",
)
@verbose_option
@reports_failures
def run(
    targets: tuple[str, ...],
    name: str | None,
    address: Path | None,
    nats: str | None,
    remote_timeout: float,
    peer_timeout: float,
    lossless: bool,
    verbose: bool,
) -> None:
    """Host services on a bus that busctl can attach to.

    A TARGET is a module (its start(bus) function, else every Service class it
    defines), a file path (the same, from a .py file), or module:Class. With no
    TARGET, the sample services run. Stops cleanly on Ctrl-C or SIGTERM: every
    service's on_stop runs and the socket is removed.

    With --nats URL the bus spans processes: run more with the same --nats
    and --name, and attach with `busctl ... --nats URL --bus NAME`.
    """
    loaded = [(target, _load_target(target)) for target in targets]
    bus_name = name or (_target_name(targets[0]) if targets else "sample")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server: EmbeddedServer | None = None
    try:
        if nats == "embedded":
            server = _embedded_server()
            nats = server.url
        timeouts = (remote_timeout, peer_timeout)
        bus = _start_bus(bus_name, address, nats or "", timeouts, lossless)
        try:
            started = _start_targets(bus, loaded)
            names = ", ".join(s.service_name() for s in started) or "none"
            _output.console().print(
                _started_text(bus, bus_name, address, nats, names, server is not None, lossless),
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
        if server is not None:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _embedded_server() -> EmbeddedServer:
    from .._nats_server import EmbeddedServer, ServerError

    try:
        return EmbeddedServer.start()
    except ServerError as exc:
        raise Failure(str(exc), ExitStatus.ERROR) from None


def _start_bus(
    bus_name: str,
    address: Path | None,
    nats: str,
    timeouts: tuple[float, float],
    lossless: bool,
) -> Bus:
    """The bus: on the socket (``address`` or the default), or on NATS (and ``address``)."""
    from bus import Bus, TransportError

    control: bool | Path = address if address is not None else not nats
    try:
        return Bus(
            name=bus_name,
            control=control,
            nats=nats,
            remote_timeout=timeouts[0],
            peer_timeout=timeouts[1],
            trace_overflow="wait" if lossless else "drop",
        )
    except TransportError as exc:  # one line already: which server, and that none answered
        raise Failure(str(exc), ExitStatus.NO_BUS) from None
    except Exception as exc:
        raise Failure(f"cannot start bus {bus_name!r}: {exc}", ExitStatus.ERROR) from exc


def _started_text(
    bus: Bus,
    bus_name: str,
    address: Path | None,
    nats: str | None,
    names: str,
    embedded: bool,
    lossless: bool,
) -> str:
    """What ``run`` says once its services run: where, what, and how to attach."""
    lossless_note = ", tracing lossless" if lossless else ""
    if not nats:
        bus_flag = f" --bus {bus.address}" if address is not None else ""
        return (
            f"bus {bus_name} listening on {bus.address} (pid {bus.pid}){lossless_note}\n"
            f"services: {names}\n"
            f"from another terminal: busctl status{bus_flag}, busctl monitor{bus_flag}, "
            f"busctl repl{bus_flag}; Ctrl-C stops"
        )
    label = bus.inspect().get("nats", {}).get("process", f"pid {bus.pid}")
    lines = []
    if embedded:
        lines.append(f"nats-server started at {nats} (it stops with this bus)")
    lines += [
        f"bus {bus_name} on {nats} as {label} (pid {bus.pid})"
        + (f", and on {bus.address}" if bus.address is not None else "")
        + lossless_note,
        f"services: {names}",
        f"from another terminal: busctl tui --nats {nats} --bus {bus_name} "
        "(or services, monitor, call, repl...)",
        f"more services on this bus: busctl run --nats {nats} --name {bus_name} TARGET...",
        "Ctrl-C stops",
    ]
    return "\n".join(lines)


def _target_name(target: str) -> str:
    base = target.partition(":")[0]
    return Path(base).stem if base.endswith(".py") else base.rsplit(".", 1)[-1]


def _load_target(target: str) -> Callable[[Bus], list[Service]]:
    """What to do with the bus for ``target``: a function adding its services.

    Raises:
        Failure: the target cannot be loaded (exit status 2).
    """
    module_part, _, attribute = target.partition(":")
    if not module_part:
        raise Failure(
            f"{target!r} names no module or file before ':'; use 'module:Class'",
            ExitStatus.USAGE,
        )
    module = _import_target(module_part)
    if attribute:
        try:
            obj = functools.reduce(getattr, attribute.split("."), module)
        except AttributeError:
            raise Failure(
                f"module {module.__name__!r} has no {attribute!r}{_close_names(module, attribute)}",
                ExitStatus.USAGE,
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
    for cls in classes:
        _check_constructible(cls, target)

    def start_all(bus: Bus) -> list[Service]:
        return [bus.add_service(cls()) for cls in classes]

    return start_all


def _close_names(module: ModuleType, attribute: str) -> str:
    """``; did you mean 'Greeter'?`` for a misspelt attribute, else nothing."""
    head = attribute.split(".", 1)[0]
    public = [name for name in vars(module) if not name.startswith("_")]
    close = difflib.get_close_matches(head, public, n=3)
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""


def _import_target(spec: str) -> ModuleType:
    path = Path(spec)
    if spec.endswith(".py") or os.sep in spec or spec.startswith(".") or path.is_file():
        return _exec_file(spec, path)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise Failure(
                f"no module named {spec!r}; give a module, a .py file or module:Class",
                ExitStatus.USAGE,
            ) from None
        raise _load_failure(spec, exc, None) from exc
    except (Exception, SystemExit) as exc:  # the module's own code failed
        raise _load_failure(spec, exc, None) from exc


def _exec_file(spec: str, path: Path) -> ModuleType:
    if path.is_dir():
        raise Failure(
            f"{spec} is a directory; give a .py file, a module or module:Class", ExitStatus.USAGE
        )
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
    try:
        loader_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # SystemExit: a script that exits at import
        sys.modules.pop(module_name, None)
        raise _load_failure(spec, exc, str(path.resolve())) from exc
    return module


def _load_failure(target: str, exc: BaseException, own_file: str | None) -> Failure:
    """One line for a target whose code failed while loading: where, and what."""
    where = _where(exc, own_file)
    return Failure(
        f"cannot load {target}{f' ({where})' if where else ''}: {_what(exc)}",
        ExitStatus.USAGE,
        "".join(traceback.format_exception(exc)),
    )


def _what(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):  # its str() repeats the file and line
        return f"{type(exc).__name__}: {exc.msg}"
    if isinstance(exc, SystemExit):
        return f"it called exit({exc.code!r}) while being imported"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _where(exc: BaseException, own_file: str | None) -> str:
    """Where ``exc`` arose: the innermost frame of the user's code.

    ``line N`` when that is in ``own_file`` (the target's file), else
    ``path, line N``; empty when only the bus's or Python's code is involved.
    """
    own = os.path.realpath(own_file) if own_file is not None else None
    if isinstance(exc, SyntaxError) and exc.filename:
        return _place(exc.filename, exc.lineno, own)
    skip = _not_user_code()
    theirs = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<")  # <frozen importlib._bootstrap>, <string>
        and not os.path.realpath(frame.filename).startswith(skip)
    ]
    if not theirs:
        return ""
    return _place(theirs[-1].filename, theirs[-1].lineno, own)


def _not_user_code() -> tuple[str, ...]:
    """Where code that is not the user's lives: a raise there is rarely the mistake."""
    import bus

    return tuple(
        os.path.realpath(path) + os.sep
        for path in {
            str(Path(bus.__file__ or ".").parent),
            str(Path(__file__).parent),  # busctl
            sysconfig.get_paths()["stdlib"],
            str(Path(inspect.getfile(inspect)).parent),  # the standard library, as loaded
        }
    )


def _place(filename: str, line: int | None, own: str | None) -> str:
    if own is not None and os.path.realpath(filename) == own:
        return f"line {line}" if line else ""
    try:
        shown = os.path.relpath(filename)
    except ValueError:  # another drive
        shown = filename
    if shown.startswith(".." + os.sep + ".."):  # far away: the full path reads better
        shown = filename
    return f"{shown}, line {line}" if line else shown


def _file_of(target: str) -> str | None:
    """The file a target names, if it names one (a module's is shown by its path)."""
    base = target.partition(":")[0]
    if base.endswith(".py") or os.sep in base:
        return str(Path(base).resolve())
    return None


def _check_constructible(cls: type[Service], target: str) -> None:
    """Refuse, before the bus starts, a Service class that needs arguments."""
    try:
        inspect.signature(cls).bind()
    except TypeError as exc:
        raise Failure(
            f"cannot create {cls.__qualname__} from {target!r}: its __init__ needs "
            f"arguments ({exc}); give a start(bus) function that builds it",
            ExitStatus.USAGE,
        ) from None
    except ValueError:  # no signature to read: find out when it is called
        pass


def _starter(obj: Any, target: str) -> Callable[[Bus], list[Service]]:
    from bus import Service

    if inspect.isclass(obj) and issubclass(obj, Service):
        _check_constructible(obj, target)
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
            where = _where(exc, _file_of(target))
            raise Failure(
                f"starting {target!r} failed{f' ({where})' if where else ''}: {_what(exc)}",
                ExitStatus.ERROR,
                "".join(traceback.format_exception(exc)),
            ) from exc
    return started
