"""``python -m benchmarks``: run the scenarios and print the report.

Example::

    python -m benchmarks --quick
    python -m benchmarks --scenario command_roundtrip --scenario memory -n 50000
    python -m benchmarks --scenario memory --memory-events 10000000
    python -m benchmarks --unpinned --json | jq '.targets'
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Sequence

from ._harness import ALL_SCENARIOS, run
from ._report import render, to_json

__all__ = ["ExitStatus", "main"]


class ExitStatus(enum.IntEnum):
    """What the process exit code means."""

    # Every implementation ran (targets missed are a result, not a failure).
    SUCCESS = 0
    # Some implementation failed or lost spans (its figures do not count);
    # the report says which.
    ERROR = 1
    # Bad arguments (argparse's own code).
    USAGE = 2
    # Interrupted with Ctrl-C.
    INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the bus against a SimpleQueue hand-off and an obvious "
        "ThreadPoolExecutor bus, and check the performance targets.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes; done in seconds")
    parser.add_argument("--json", action="store_true", help="write only JSON to stdout")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=ALL_SCENARIOS,
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(ALL_SCENARIOS)}",
    )
    parser.add_argument("-n", type=int, metavar="N", help="operations per repeat, every scenario")
    parser.add_argument("--repeat", type=int, metavar="R", help="repeats; the best is reported")
    parser.add_argument(
        "--memory-events",
        type=int,
        metavar="M",
        help="with 'memory', also follow RSS over M traced events (the target: 10000000)",
    )
    parser.add_argument(
        "--unpinned",
        action="store_true",
        help="let threads run on every CPU (default: all on one, as the targets are stated)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmarks, print the report; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    for flag, value in (
        ("-n", args.n),
        ("--repeat", args.repeat),
        ("--memory-events", args.memory_events),
    ):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    interactive = sys.stderr.isatty()

    def progress(line: str) -> None:
        if interactive:
            sys.stderr.write(f"\r\033[K{line}")
            sys.stderr.flush()

    try:
        results = run(
            args.scenario,
            n=args.n,
            repeat=args.repeat,
            quick=args.quick,
            memory_events=args.memory_events,
            pin=not args.unpinned,
            progress=progress,
        )
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return ExitStatus.INTERRUPTED
    finally:
        if interactive:
            sys.stderr.write("\r\033[K")
    if args.json:
        sys.stdout.write(to_json(results) + "\n")
    else:
        sys.stdout.write(render(results, color=sys.stdout.isatty()))
    return ExitStatus.ERROR if results.errors else ExitStatus.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
