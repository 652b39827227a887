"""The ``busctl`` command line: one click command per verb.

Heavy imports live inside the verbs that need them, so ``busctl --help`` and
``busctl --version`` stay instant.
"""

from __future__ import annotations

import importlib
import sys

import click

from bus import __version__

from ._exit import ExitStatus

__all__ = ["cli", "main"]


# Each verb lives in the module that owns it and is imported only when used.
# verb -> ("module:attribute", one-line help for ``busctl --help``)
LAZY_VERBS: dict[str, tuple[str, str]] = {
    "run": ("busctl.commands:run", "Host services on a bus that busctl can attach to."),
    "list": ("busctl.commands:list_buses", "List the running buses that can be attached."),
    "status": ("busctl.commands:status", "Show one bus: name, pid, uptime, counts, totals."),
    "services": ("busctl.commands:services", "List the services of a bus."),
    "commands": ("busctl.commands:commands", "List the commands of a bus."),
    "listeners": ("busctl.commands:listeners", "List the listeners of a bus."),
    "introspect": ("busctl.commands:introspect", "Show a command's signature, doc and stats."),
    "who-handles": (
        "busctl.commands:who_handles",
        "Show exactly which handlers a command or event name reaches.",
    ),
    "call": ("busctl.commands:call", "Execute a command and print its result."),
    "emit": ("busctl.commands:emit", "Fire an event."),
    "monitor": ("busctl.commands:monitor", "Show live traffic, one line per command or event."),
    "capture": ("busctl.commands:capture", "Record traffic to a trace file."),
    "repl": ("busctl.repl:repl", "An interactive prompt with completion and help."),
    "tui": ("busctl.tui:tui", "The live inspector (a terminal UI)."),
    "trace": ("busctl.trace_cli:trace", "Read a trace file offline; export it."),
    "replay": ("busctl.trace_cli:replay", "Replay a trace file onto a bus."),
}


class LazyGroup(click.Group):
    """A group whose verbs are imported on first use, keeping start-up instant."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_VERBS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_VERBS:
            return _load_verb(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, LAZY_VERBS[name][1]) for name in LAZY_VERBS]
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=80)))
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


def _load_verb(name: str) -> click.Command:
    target, _ = LAZY_VERBS[name]
    module_name, attribute = target.split(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="busctl")
def cli() -> None:
    """Inspect, drive and trace a running bus.

    Without --bus, a verb attaches to the one bus running (or names the
    choices when there are several). BUS_ADDRESS names a socket explicitly.
    """


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


def main() -> None:
    """Entry point: run the CLI, mapping Ctrl-C to exit status 130.

    Click's own handling would print ``Aborted!`` and exit 1 on Ctrl-C; here
    a verb that has something to say about it (``call``: the command runs on)
    says it, and any other one ends with ``interrupted``.
    """
    try:
        status = cli.main(standalone_mode=False)
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(ExitStatus.INTERRUPTED)
        click.echo("Aborted!", err=True)  # end of input at a prompt
        sys.exit(ExitStatus.ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # between click's frames: before or after the verb
        click.echo("\ninterrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    sys.exit(status if isinstance(status, int) else ExitStatus.OK)
