"""The REPL face of busctl: a prompt-toolkit prompt on one bus.

    $ busctl repl                    # the one running bus, or an embedded sample bus
    home> lights.turn_on kitchen brightness=60
    home> ?thermostat.set_target
    home> monitor lights.*           # Ctrl-C returns to the prompt

What lives here:

- ``command``: the ``busctl repl`` click command: picks the bus, the history
  file and the terminal.
- ``session``: ``Repl``, the loop of prompt, parse, request, print, free of
  any terminal (tests drive it through a pipe).
- ``complete``: the registry of names the REPL knows, and completion.
- ``keys``: reading the keyboard while a request is waited on (Ctrl-C).
- ``link``: the REPL's hold on a bus: the client, the registry kept fresh,
  word of a lost connection, reconnecting.
- ``views``: what the REPL prints (results, errors, help, tables).

It may import ``busctl.render``, the shared infrastructure at the top of
``busctl`` (the client, argument parsing, the embedded bus, exit codes),
``busctl.cli.options`` for the words of a failure every face shares, and
the public modules of ``bus``.
"""
