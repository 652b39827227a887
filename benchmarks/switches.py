"""Context switches per command round trip, thread by thread (Linux).

    python -m benchmarks.switches                    # the bus untraced and traced three ways
    python -m benchmarks.switches --idler --json     # with a low-priority runnable thread

    from benchmarks.switches import count_switches
    for row in count_switches(["bus", "bus-ring"], calls=20_000):
        print(row.implementation, row.voluntary, row.involuntary)

On one CPU a round trip is threads taking turns, and how often the kernel
switches between them decides its wall time more than the instructions do.
This runs the ``command_roundtrip`` scenario's calls on the benchmark's own
rigs (pinned, warmed up, every span exported inside the counted region, as
the benchmark does) and reads each thread's ``voluntary_ctxt_switches``
(it blocked) and ``nonvoluntary_ctxt_switches`` (it was preempted) from
``/proc/self/task/*/status`` before and after, per call.

``--idler`` keeps one more thread of the process runnable at the lowest
priority (nice 19), spending its time in C without the GIL. It shows the
scheduler's part: with any runnable thread of low weight in the process,
the kernel (EEVDF, Linux 6.6 and later) stops preempting the thread that
wakes another, and a round trip takes the two switches it needs
(``docs/benchmarks.md``, "Where a traced round trip's wall time goes").
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._bus_services import echo_service
from ._pinning import pinned
from ._rigs import BenchmarkError, rig

__all__ = ["IMPLEMENTATIONS", "SwitchCount", "count_switches", "main"]

IMPLEMENTATIONS = ("bus", "bus-ring", "bus-app", "bus-file")
"""The rigs of ``benchmarks._rigs`` whose round trips can be counted here."""

_TASKS = Path("/proc/self/task")


@dataclass(frozen=True)
class SwitchCount:
    """One implementation's round trips: time and context switches per call."""

    implementation: str
    calls: int
    us_per_call: float
    cpu_us_per_call: float
    voluntary: float
    involuntary: float
    by_thread: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per role (caller, service, trace, other): voluntary and involuntary per call."""
    spans_expected: int = 0
    spans_exported: int = 0


def _switches() -> dict[int, tuple[int, int]]:
    """Voluntary and involuntary switches so far of every thread of this process."""
    counts: dict[int, tuple[int, int]] = {}
    for task in _TASKS.iterdir():
        voluntary = involuntary = 0
        try:
            text = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile: it is not one we count
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                involuntary = int(line.split()[1])
        counts[int(task.name)] = (voluntary, involuntary)
    return counts


def _role(thread: threading.Thread | None, caller: int) -> str:
    if thread is None:
        return "other"
    if thread.native_id == caller:
        return "caller"
    if thread.name.endswith("/trace"):
        return "trace"
    if thread.name.endswith("/echo"):
        return "service"
    return "other"


@contextlib.contextmanager
def _idler(on: bool) -> Iterator[None]:
    """A thread at nice 19 kept runnable in C (hashing, without the GIL) while inside."""
    if not on:
        yield
        return
    stop = threading.Event()
    block = bytes(1 << 20)

    def spin() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while not stop.is_set():
            hashlib.sha256(block).digest()  # lets go of the GIL for the whole block

    thread = threading.Thread(target=spin, name="switches/idler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _count_one(implementation: str, calls: int, warmup: int, idler: bool) -> SwitchCount:
    caller = threading.get_native_id()
    with rig(implementation) as r:
        if r.real is None:
            raise ValueError(f"{implementation!r} is not one of {', '.join(IMPLEMENTATIONS)}")
        r.real.add_service(echo_service())
        execute = r.bus.execute_command
        for i in range(warmup):
            execute("echo", i).result()
        if r.tally is not None:
            r.tally.mark(2 * warmup)
        with _idler(idler):
            before = _switches()
            cpu, wall = time.process_time(), time.perf_counter()
            total = 0
            for i in range(calls):
                total += execute("echo", i).result()
            if r.tally is not None:
                r.tally.settle(2 * calls)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            after = _switches()
            threads = {t.native_id: t for t in threading.enumerate()}
        if total != calls * (calls - 1) // 2:
            raise BenchmarkError(f"{implementation} answered wrongly (sum {total})")
        exported = r.tally.exported() if r.tally is not None else 0
    roles: dict[str, list[int]] = {}
    for tid, (voluntary, involuntary) in after.items():
        start = before.get(tid, (0, 0))
        role = _role(threads.get(tid), caller)
        if role == "other" and threads.get(tid) is not None and "idler" in threads[tid].name:
            role = "idler"
        sums = roles.setdefault(role, [0, 0])
        sums[0] += voluntary - start[0]
        sums[1] += involuntary - start[1]
    by_thread = {role: (v / calls, n / calls) for role, (v, n) in sorted(roles.items())}
    return SwitchCount(
        implementation,
        calls,
        wall / calls * 1e6,
        cpu / calls * 1e6,
        sum(v for v, _ in by_thread.values()),
        sum(n for _, n in by_thread.values()),
        by_thread,
        2 * calls if r.tally is not None else 0,
        exported,
    )


def count_switches(
    implementations: Sequence[str] = IMPLEMENTATIONS,
    *,
    calls: int = 20_000,
    warmup: int = 500,
    repeat: int = 1,
    idler: bool = False,
    pin: bool = True,
) -> list[SwitchCount]:
    """Round trips of each implementation, in turn, ``repeat`` times (rotated).

    Raises:
        BenchmarkError: not Linux (no ``/proc/self/task``), or a run answered wrongly.
        ValueError: an implementation this cannot count.
    """
    if not _TASKS.is_dir():
        raise BenchmarkError("counting context switches needs Linux's /proc/self/task")
    for name in implementations:
        if name not in IMPLEMENTATIONS:
            raise ValueError(f"cannot count {name!r}: choose from {', '.join(IMPLEMENTATIONS)}")
    rows: list[SwitchCount] = []
    with pinned(pin):
        for run in range(repeat):
            shift = run % len(implementations)
            for name in [*implementations[shift:], *implementations[:shift]]:
                rows.append(_count_one(name, calls, warmup, idler))
    return rows


def render(rows: Sequence[SwitchCount]) -> str:
    """A table: µs per call, switches per call in all and per thread."""
    lines = [
        f"{'implementation':<10} {'µs/call':>8} {'cpu µs':>7} {'vol':>5} {'invol':>5}"
        f"  per thread (vol/invol)  spans"
    ]
    for row in rows:
        threads = "  ".join(f"{k} {v:.2f}/{n:.2f}" for k, (v, n) in row.by_thread.items())
        spans = f"{row.spans_exported}/{row.spans_expected}" if row.spans_expected else "-"
        lines.append(
            f"{row.implementation:<10} {row.us_per_call:8.2f} {row.cpu_us_per_call:7.2f}"
            f" {row.voluntary:5.2f} {row.involuntary:5.2f}  {threads}  {spans}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.switches``: the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.switches",
        description="Context switches per command round trip, thread by thread (Linux).",
    )
    parser.add_argument("-n", "--calls", type=int, default=20_000, help="round trips per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, rotated")
    parser.add_argument(
        "--implementation",
        action="append",
        choices=IMPLEMENTATIONS,
        help="count only this one (repeatable); default: all",
    )
    parser.add_argument("--idler", action="store_true", help="a nice-19 runnable thread too")
    parser.add_argument("--unpinned", action="store_true", help="threads on every CPU")
    parser.add_argument("--json", action="store_true", help="write only JSON to stdout")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.repeat < 1:
        parser.error("--calls and --repeat must be at least 1")
    try:
        rows = count_switches(
            tuple(args.implementation or IMPLEMENTATIONS),
            calls=args.calls,
            repeat=args.repeat,
            idler=args.idler,
            pin=not args.unpinned,
        )
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
