"""``busctl repl``: an interactive prompt on a bus, with completion and help.

    $ busctl repl                    # the one running bus, or an embedded sample bus
    $ busctl repl --nats nats://127.0.0.1:4222 --bus home   # a bus across processes
    home> lights.turn_on kitchen brightness=60
    home> lights.turn_on(room="hall")
    home> ?thermostat.set_target
    home> emit motion.detected room=hall
    home> monitor lights.*           # Ctrl-C returns to the prompt
    home> hold lights.turn_on        # then: held, release 1 brightness=40, drop 2
    home> copy python                # the last call as a Python snippet

The work is done by ``busctl.repl.session.Repl``, which takes a client, an input and
an output, so it runs in tests without a terminal; this module only picks the
bus, the history file and the terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._exit import ExitStatus

__all__ = ["repl"]


@click.command()
@click.option(
    "--bus",
    "target",
    metavar="NAME|PATH",
    help="The bus to attach to. With --nats: a bus's name on that server.",
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
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to keep the history (default: $XDG_STATE_HOME/busctl/history).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the remote traceback with each error.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds the bus waits for a command.",
)
@click.option(
    "--safe/--no-safe",
    default=None,
    help="Ask before running a command not declared read-only "
    "(default: `safe` in ~/.config/busctl/config.toml, else off).",
)
def repl(
    target: str | None,
    nats: str | None,
    history_path: Path | None,
    verbose: bool,
    timeout: float,
    safe: bool | None,
) -> None:
    """An interactive prompt with completion and help.

    Attaches to the bus --bus names, or to the one running; with none running,
    starts the sample services on an embedded bus in this process. With stdin
    not a terminal, carries out its lines as a script.
    """
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory

    from bus import BusError

    from .._client import ConnectionLost
    from .._config import setting
    from .._embedded import connect_or_embed
    from ..cli.options import as_failure
    from .session import Repl, default_history_path

    safe = bool(setting("safe", safe, False))
    try:
        client, embedded = connect_or_embed(target, nats=nats or None)
    except (BusError, ConnectionLost, OSError) as exc:
        failure = as_failure(exc)  # the same words as every other verb
        click.echo(f"error: {failure if failure is not None else exc}", err=True)
        raise SystemExit(ExitStatus.NO_BUS) from None
    if not sys.stdin.isatty():
        # A script on stdin (`busctl repl < session.txt`): no prompt, no history.
        if embedded is not None:
            click.echo("note: no bus is running: the lines run on an embedded sample bus", err=True)
        try:
            status = Repl(client, verbose=verbose, timeout=timeout, safe=safe).run_script(sys.stdin)
        finally:
            client.close()
            if embedded is not None:
                embedded.close()
        raise SystemExit(status)
    path = history_path or default_history_path()
    history: History
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(path))
    except OSError as exc:
        click.echo(f"warning: history not kept ({exc})", err=True)
        history = InMemoryHistory()
    session = Repl(
        client,
        history=history,
        embedded=embedded is not None,
        verbose=verbose,
        timeout=timeout,
        safe=safe,
    )
    try:
        status = session.run()
    finally:
        session.client.close()  # a new one if the REPL reconnected
        client.close()
        if embedded is not None:
            embedded.close()
    raise SystemExit(status)
