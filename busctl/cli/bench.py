"""``busctl bench``: the benchmark scenarios side by side, as ratios.

$ busctl bench --quick
$ busctl bench --scenario event_delivery --json
"""

from __future__ import annotations

import click

__all__ = ["bench"]


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
def bench(
    quick: bool, as_json: bool, scenarios: tuple[str, ...], count: int | None, repeat: int | None
) -> None:
    """Run the benchmark scenarios side by side and print the ratios."""
    import benchmarks

    try:
        results = benchmarks.run(
            scenarios=list(scenarios) or None, n=count, repeat=repeat, quick=quick
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(benchmarks.to_json(results))
    else:
        click.echo(benchmarks.render(results))
