"""The command-line face of busctl: the click group and one module per family of verbs.

    from busctl.cli import cli, main

    main()                          # what the ``busctl`` script runs
    cli.main(["status", "--json"], standalone_mode=False)

What lives here:

- ``group``: the click group, ``main`` (exit codes, Ctrl-C), and ``LAZY_VERBS``,
  which says in which module each verb lives; a verb's module is imported
  only when that verb runs, so ``busctl --help`` stays instant.
- ``options``: what every verb shares: ``--bus``, ``--json``, ``-v``, attaching,
  and failures turned into one line on stderr and an ``ExitStatus``.
- The verbs: ``run``; ``status`` (``list``, ``status``); ``registry``
  (``services``, ``commands``, ``listeners``, ``introspect``,
  ``who-handles``); ``invoke``
  (``call``, ``emit``); ``watch`` (``monitor``, ``capture``); ``trace``
  (``trace check/show/export``); ``replay``; ``bench``.
- ``_output``: how this face prints with rich (tables, fields, JSON).

It may import ``busctl.render`` (what every face draws alike), the shared
infrastructure at the top of ``busctl`` (the client, argument parsing, the
embedded bus, exit codes), ``busctl.traces``, and the public modules of
``bus``. The REPL and the TUI have their own packages and click commands.
"""

from __future__ import annotations

from .group import LAZY_VERBS, cli, main

__all__ = ["LAZY_VERBS", "cli", "main"]
