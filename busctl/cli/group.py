"""The ``busctl`` group: every verb, imported only when it runs.

Heavy imports live inside the verbs that need them, so ``busctl --help`` and
``busctl --version`` stay instant.
"""

from __future__ import annotations

import importlib
import sys

import click

from bus import __version__

from .._exit import ExitStatus

__all__ = ["cli", "main"]


# Each verb lives in the module that owns it and is imported only when used.
# verb -> ("module:attribute", one-line help for ``busctl --help``)
LAZY_VERBS: dict[str, tuple[str, str]] = {
    "run": ("busctl.cli.run:run", "Host services on a bus that busctl can attach to."),
    "list": ("busctl.cli.status:list_buses", "List the running buses that can be attached."),
    "status": ("busctl.cli.status:status", "Show one bus: name, pid, uptime, counts, totals."),
    "services": ("busctl.cli.registry:services", "List the services of a bus."),
    "commands": ("busctl.cli.registry:commands", "List the commands of a bus."),
    "listeners": ("busctl.cli.registry:listeners", "List the listeners of a bus."),
    "introspect": ("busctl.cli.registry:introspect", "Show a command's signature, doc and stats."),
    "who-handles": (
        "busctl.cli.registry:who_handles",
        "Show exactly which handlers a command or event name reaches.",
    ),
    "schema": (
        "busctl.cli.schema:schema",
        "Print the typed contract: JSON Schema, or an AsyncAPI 3.0 document.",
    ),
    "call": ("busctl.cli.invoke:call", "Execute a command and print its result."),
    "emit": ("busctl.cli.invoke:emit", "Fire an event."),
    "monitor": ("busctl.cli.watch:monitor", "Show live traffic, one line per command or event."),
    "capture": ("busctl.cli.watch:capture", "Record traffic to a trace file."),
    "trace": ("busctl.cli.trace:trace", "Read a trace file offline; export it."),
    "replay": ("busctl.cli.replay:replay", "Replay a trace file onto a bus."),
    "bench": (
        "busctl.cli.bench:bench",
        "Run the benchmark scenarios side by side and print the ratios.",
    ),
    "hold": ("busctl.cli.intervene:hold", "Hold matching calls and events before they run."),
    "held": ("busctl.cli.intervene:held", "List what is held, and the holds."),
    "release": ("busctl.cli.intervene:release", "Let held work go, as it was or edited."),
    "drop": ("busctl.cli.intervene:drop", "Drop held work (a call fails, an event is dropped)."),
    "unhold": ("busctl.cli.intervene:unhold", "End a hold; what it held goes on."),
    "stub": ("busctl.cli.stubs:stub", "Replace a command's handler in the running bus."),
    "unstub": ("busctl.cli.stubs:unstub", "Put a stubbed command's real handler back."),
    "stubs": ("busctl.cli.stubs:stubs", "List the live stubs."),
    "history": ("busctl.cli.history:history", "List recent calls and events, newest last."),
    "repl": ("busctl.repl.command:repl", "An interactive prompt with completion and help."),
    "tui": ("busctl.tui:tui", "The live inspector (a terminal UI)."),
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
