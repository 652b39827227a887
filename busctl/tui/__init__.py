"""``busctl tui``: the live inspector of a bus, in the terminal (Textual).

    busctl tui                 # the one running bus, else the embedded sample bus
    busctl tui --bus home      # a bus by name, or --bus /path/to/home.sock
    busctl tui --safe          # ask before a command not declared read-only runs
    busctl tui --nats nats://127.0.0.1:4222 --bus home    # a bus across processes, whole

Textual is imported only when the command runs, so ``busctl --help`` stays
instant. The application itself is ``busctl.tui.app.BusctlApp``.
"""

from __future__ import annotations

import click

__all__ = ["tui"]


@click.command()
@click.option(
    "--bus",
    "target",
    metavar="NAME|PATH",
    help="The bus to attach to: a name, a socket path or unix:path=... "
    "(default: $BUS_ADDRESS, else the one running bus, else the embedded sample bus). "
    "With --nats: a bus's name on that server (default: the one there).",
)
@click.option(
    "--nats",
    "nats",
    metavar="URL",
    envvar="BUS_NATS_URL",
    help="Attach over this NATS server to a bus across processes, seen whole "
    "(default: $BUS_NATS_URL; '' for none).",
)
@click.option(
    "--safe/--no-safe",
    default=None,
    help="Ask before running a command not declared read-only "
    "(default: `safe` in ~/.config/busctl/config.toml, else off).",
)
def tui(target: str | None, nats: str | None, safe: bool | None) -> None:
    """The live inspector: services, commands, listeners, activity, holds, traces."""
    from bus import BusError
    from busctl._client import ConnectionLost
    from busctl._config import setting
    from busctl._exit import ExitStatus

    from ._source import connect
    from .app import BusctlApp

    safe = bool(setting("safe", safe, False))
    # Attach before the screen takes over, so a bus that is not there is one
    # line on stderr and exit status 3, as for every other verb.
    try:
        first = connect(target, nats or None)
    except (BusError, ConnectionLost, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(ExitStatus.NO_BUS) from None
    # Connecting again attaches to that same bus (by name, over NATS): not to
    # whatever one bus a default would find then.
    BusctlApp(
        connect=lambda: connect(first.name if nats else target, nats or None),
        source=first,
        safe=safe,
    ).run()
