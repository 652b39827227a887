"""Watch the sample services talk: ``python -m sample_services``.

    $ python -m sample_services --duration 3
    demo bus: 6 services; Ctrl-C stops
    16:44:25.099 ad6806 call     say_hello              MainThread → greeter ("demo")
    16:44:25.099 ad6806 return   say_hello              greeter = "Hello, demo!"  18 µs
    16:44:25.600 2fae12 event    motion.detected        from MainThread (room="hall")  1 listener
    ...

Starts a ``Bus(name="demo")`` with every sample service, prints one line per
activity (command call and return, event, delivery to a listener) as
``busctl monitor`` does (``busctl.render.activity``), makes some traffic of
its own (motion in random rooms, the evening scene once), and on Ctrl-C,
SIGTERM or after ``--duration`` closes the bus and prints its totals.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from bus import Activity, Bus
from busctl.render.activity import activity_line

from . import start
from .lights import DEFAULT_ROOMS

__all__ = ["format_activity", "main"]


def format_activity(activity: Activity) -> str:
    """One line for one activity, as ``busctl monitor`` prints it, with its trace.

    Columns: local time, the trace's first six hex digits (blank with tracing
    off), the kind, the name, where it ran, then the arguments, result or
    error (``!!``) and how long it took.
    """
    return activity_line(activity.to_json(), trace=True)


def _summary(bus: Bus, elapsed: float) -> str:
    t = bus.inspect()["totals"]
    return (
        f"-- bus {bus.name!r} ran {elapsed:.1f} s: {t['services']} services, "
        f"{t['commands']} commands, {t['listeners']} listeners; handled {t['handled']}, "
        f"failed {t['failed']}, rejected {t['rejected']}, dropped {t['dropped']}, "
        f"late replies {t['late_replies']}, hung {t['hung']}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sample_services",
        description="Run the sample services on a bus and print its traffic.",
    )
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: never)"
    )
    parser.add_argument(
        "--no-trace", action="store_true", help="turn OpenTelemetry tracing off on the bus"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")
    parser.add_argument(
        "--tick", type=float, default=1.0, metavar="SECONDS", help="clock.tick interval"
    )
    parser.add_argument(
        "--motion-every", type=float, default=2.0, metavar="SECONDS", help="motion interval"
    )
    parser.add_argument("--seed", type=int, help="seed the rooms and sensor failures")
    return parser


class _Stop:
    """Why the demo should stop, set from a signal handler or the main loop."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.event = threading.Event()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum
        self.event.set()


def _install(stop: _Stop) -> Callable[[], None]:
    """Route SIGINT and SIGTERM to ``stop``; return what puts the old handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _print(lines: Sequence[str]) -> None:
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:  # the reader went away (| head): stop printing, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit code (130 after Ctrl-C, else 0)."""
    args = _parser().parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        _parser().error("--duration must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    lines: queue.Queue[str] = queue.Queue()
    stop = _Stop()
    restore = _install(stop)
    rng = random.Random(args.seed)
    began = time.monotonic()
    bus = Bus(name="demo", tracing=not args.no_trace)
    try:
        if not args.quiet:
            # Called on bus threads: format and queue, never print or block there.
            bus.watch(lambda activity: lines.put(format_activity(activity)))
        services = start(bus, tick_interval=args.tick, sensor_seed=args.seed)
        _print([f"demo bus: {len(services)} services; Ctrl-C stops"])
        bus.execute_command("say_hello", "demo")
        bus.fire_event("greet_event", "demo")
        plan = [(0.5, "motion"), (1.0, "scene")]
        while not stop.event.is_set():
            now = time.monotonic() - began
            if args.duration is not None and now >= args.duration:
                break
            while plan and plan[0][0] <= now:
                _, action = plan.pop(0)
                if action == "scene":
                    bus.execute_command("automation.evening_scene")
                else:
                    bus.fire_event("motion.detected", room=rng.choice(DEFAULT_ROOMS))
                    plan.append((now + args.motion_every, "motion"))
                    plan.sort()
            _drain(lines, wait=0.1)
        restore()
        if stop.signal is not None:
            _print([f"-- {signal.Signals(stop.signal).name}: closing the bus"])
        bus.close()
        _drain(lines, wait=0.0)
        _print([_summary(bus, time.monotonic() - began)])
    except BrokenPipeError:
        return 0
    finally:
        restore()
        bus.close()
    return 130 if stop.signal == signal.SIGINT else 0


def _drain(lines: queue.Queue[str], wait: float) -> None:
    """Print what is queued, waiting up to ``wait`` seconds for the first line."""
    batch: list[str] = []
    try:
        batch.append(lines.get(timeout=wait) if wait > 0 else lines.get_nowait())
        while len(batch) < 1000:
            batch.append(lines.get_nowait())
    except queue.Empty:
        pass
    if batch:
        _print(batch)


if __name__ == "__main__":
    sys.exit(main())
