"""``busctl run``: host services on a bus with the control endpoint.

    $ busctl run                                  # the sample services
    $ busctl run my_app.services                  # start(bus), else every Service class
    $ busctl run ./house.py sample_services.greeter:Greeter --name home

It stops cleanly on Ctrl-C or SIGTERM: the bus closes, so every service's
``on_stop`` runs, and the socket file is removed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

import click

from . import _output
from ._exit import ExitStatus
from ._verbs import Failure, reports_failures, verbose_option

if TYPE_CHECKING:
    from bus import Bus, Service

__all__ = ["run"]


@click.command("run")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--name", help="The bus name (default: sample, or the first target's name).")
@click.option(
    "--address",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Listen on this socket path instead of the default directory.",
)
@verbose_option
@reports_failures
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
                f"starting {target!r} failed: {type(exc).__name__}: {exc}",
                ExitStatus.ERROR,
                traceback.format_exc(),
            ) from exc
    return started
