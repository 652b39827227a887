"""busctl: the developer console of the bus.

    $ busctl --version
    $ busctl bench --quick

The console attaches to a running bus to inspect it, call its commands, fire
its events, watch its traffic and work with its traces.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Run the ``busctl`` command line."""
    from .cli import main as _main

    _main()
