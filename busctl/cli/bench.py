"""``busctl bench``: the benchmark scenarios side by side, as ratios.

    $ busctl bench --quick                       # in a source checkout
    $ busctl bench --scenario command_roundtrip --json
    $ busctl bench --scenario memory --memory-events 10000000

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
@reports_failures
def bench(
    quick: bool,
    as_json: bool,
    scenarios: tuple[str, ...],
    count: int | None,
    repeat: int | None,
    memory_events: int | None,
    unpinned: bool,
) -> None:
    """Run the benchmark scenarios side by side and print the ratios.

    From a source checkout: the scenarios are not installed with the package.
    Every thread runs on one CPU unless --unpinned.
    """
    benchmarks = _benchmarks()
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
