"""The ``busctl`` command line: one click command per verb.

Heavy imports live inside the verbs that need them, so ``busctl --help`` and
``busctl --version`` stay instant.
"""

from __future__ import annotations

import sys

import click

from bus import __version__

from ._exit import ExitStatus

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="busctl")
def cli() -> None:
    """Inspect, drive and trace a running bus."""


@cli.command()
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
    import json

    import benchmarks

    try:
        results = benchmarks.run(
            scenarios=list(scenarios) or None, n=count, repeat=repeat, quick=quick
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(benchmarks.to_json(results), indent=2))
    else:
        click.echo(benchmarks.render(results))


def main() -> None:
    """Entry point: run the CLI, mapping Ctrl-C to exit status 130."""
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
