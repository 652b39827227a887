"""``busctl bench``: the benchmark scenarios side by side, as ratios.

    $ busctl bench --quick                       # in a source checkout
    $ busctl bench --scenario command_roundtrip --json
    $ busctl bench --scenario memory --memory-events 10000000
    $ busctl bench --nats                        # a bus across processes, on a private server

The scenarios are the ``benchmarks`` package of the source repository
(``python -m benchmarks`` runs them too). It is not installed with the wheel,
where a top-level package of that name could be anyone's: ``busctl bench``
finds it in the checkout the running busctl was installed from (``pip
install -e``), else in the current directory, and otherwise says in one line
how to run it.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import click

from .._exit import ExitStatus
from .options import Failure, reports_failures

__all__ = ["bench", "find_checkout"]

PROJECT = "bus"
"""The ``[project] name`` of the repository whose benchmarks these are."""


def find_checkout(*places: Path) -> Path | None:
    """The first of ``places`` that is a checkout of this project with its benchmarks.

    A checkout holds ``pyproject.toml`` naming the project ``bus`` and the
    ``benchmarks`` package: another project's ``benchmarks`` will not do.
    """
    for place in places:
        try:
            with (place / "pyproject.toml").open("rb") as file:
                name = tomllib.load(file).get("project", {}).get("name")
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if name == PROJECT and (place / "benchmarks" / "__init__.py").is_file():
            return place
    return None


def _benchmarks() -> ModuleType:
    """The ``benchmarks`` package of the checkout busctl runs from, or of the current one.

    Raises:
        Failure: neither is a checkout with its benchmarks.
    """
    here = Path(__file__).resolve().parents[2]  # busctl/cli/bench.py -> the checkout, if any
    root = find_checkout(here, Path.cwd())
    if root is None:
        raise Failure(
            "busctl bench runs the benchmarks of a source checkout: in a clone of the "
            "repository, run `busctl bench` or `python -m benchmarks`",
            ExitStatus.ERROR,
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module("benchmarks")
    where = Path(module.__file__ or "").resolve().parent
    if where != (root / "benchmarks").resolve():
        raise Failure(
            f"`benchmarks` is imported from {where}, not from the checkout at {root}: "
            f"run `python -m benchmarks` in {root}",
            ExitStatus.ERROR,
        )
    return module


@click.command("bench")
@click.option("--quick", is_flag=True, help="Small runs: a rough figure in a few seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    metavar="NAME",
    help="Run only this scenario (repeatable).",
)
@click.option("-n", "count", type=click.IntRange(min=1), help="Operations per run.")
@click.option("--repeat", type=click.IntRange(min=1), help="Runs per scenario; the best counts.")
@click.option(
    "--memory-events",
    type=click.IntRange(min=1),
    metavar="N",
    help="Also follow RSS over N traced events (the target: 10000000).",
)
@click.option("--unpinned", is_flag=True, help="Run threads on every CPU, not all on one.")
@click.option(
    "--nats",
    "nats",
    is_flag=True,
    help="The NATS scenarios instead: a remote command against bare nats-py, events "
    "across processes, a local command with NATS on and off.",
)
@click.option(
    "--url",
    metavar="URL",
    help="With --nats: run on this NATS server (default: a private one from the wheel).",
)
@reports_failures
def bench(
    quick: bool,
    as_json: bool,
    scenarios: tuple[str, ...],
    count: int | None,
    repeat: int | None,
    memory_events: int | None,
    unpinned: bool,
    nats: bool,
    url: str | None,
) -> None:
    """Run the benchmark scenarios side by side and print the ratios.

    From a source checkout: the scenarios are not installed with the package.
    Every thread runs on one CPU unless --unpinned.
    With --nats, the three NATS figures, in one run on one server: -n is the
    round trips per figure (events are ten times as many).
    """
    benchmarks = _benchmarks()
    if nats:
        if memory_events is not None or unpinned:
            raise click.UsageError("--memory-events and --unpinned are not for --nats")
        _bench_nats(quick, as_json, scenarios, count, repeat, url)
        return
    if url is not None:
        raise click.UsageError("--url is for --nats")
    try:
        results = benchmarks.run(
            scenarios=list(scenarios) or None,
            n=count,
            repeat=repeat,
            quick=quick,
            memory_events=memory_events,
            pin=not unpinned,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(benchmarks.to_json(results))
    else:
        click.echo(benchmarks.render(results))
    if results.errors:
        raise Failure(
            f"{len(results.errors)} figure(s) do not count (a run failed or lost spans): "
            "the report says which",
            ExitStatus.ERROR,
            reported=as_json,
        )


def _bench_nats(
    quick: bool,
    as_json: bool,
    scenarios: tuple[str, ...],
    count: int | None,
    repeat: int | None,
    url: str | None,
) -> None:
    """``bench --nats``: ``benchmarks.nats.run_nats``, its ratios as a table or JSON."""
    if scenarios or repeat is not None:
        raise click.UsageError(
            "--scenario and --repeat are not for --nats (its three run together)"
        )
    try:
        from benchmarks.nats import run_nats  # the checkout's: _benchmarks() put it on the path
    except ImportError as exc:
        raise Failure(f"cannot load the NATS benchmark: {exc}", ExitStatus.ERROR) from None
    calls = count or (300 if quick else 2000)
    try:
        report = run_nats(url, calls=calls, events=calls * 10)
    except RuntimeError as exc:  # no nats-server, or the other process did not start
        raise Failure(f"the NATS benchmark cannot run: {exc}", ExitStatus.ERROR) from None
    if as_json:
        import json

        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.render())
