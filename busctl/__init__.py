"""busctl: the developer console of the bus.

    $ pip install 'bus[console]'
    $ busctl --version
    $ busctl status

The console attaches to a running bus to inspect it, call its commands, fire
its events, watch its traffic and work with its traces. It has three faces,
one package each: ``busctl.cli`` (the verbs), ``busctl.repl`` (a prompt) and
``busctl.tui`` (a terminal UI); ``busctl.render`` is what they draw alike,
``busctl.traces`` the trace files, offline.

``pip install bus`` is the library alone; the console's own dependencies
(click, rich, prompt-toolkit, textual, the OTLP/HTTP exporter) are the
``console`` extra. The ``busctl`` script is installed either way, and
without them says in one line how to get them.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["CONSOLE_MODULES", "INSTALL_HINT", "main", "missing_console_modules"]

CONSOLE_MODULES = ("click", "rich", "prompt_toolkit", "textual")
"""What every face of the console imports: the ``console`` extra (the OTLP
exporter too, which only ``busctl trace export --format otlp`` needs)."""

INSTALL_HINT = "pip install 'bus[console]'"
"""How to get the console's dependencies, as every message that misses them says it."""


def missing_console_modules() -> list[str]:
    """The modules of the ``console`` extra that cannot be imported here."""
    return [name for name in CONSOLE_MODULES if importlib.util.find_spec(name) is None]


def main() -> None:
    """Run the ``busctl`` command line (exit 1, in one line, without the console extra)."""
    missing = missing_console_modules()
    if missing:
        sys.stderr.write(
            f"error: busctl needs the console's dependencies ({', '.join(missing)} "
            f"missing): {INSTALL_HINT}\n"
        )
        raise SystemExit(1)
    try:
        from .cli import main as _main
    except KeyboardInterrupt:  # Ctrl-C while the console loads: as during a verb
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None  # ExitStatus.INTERRUPTED, not imported yet

    _main()
