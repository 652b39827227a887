"""The REPL face of busctl: a prompt-toolkit prompt on one bus.

    $ busctl repl                    # the one running bus, or an embedded sample bus
    home> lights.turn_on kitchen brightness=60
    home> ?thermostat.set_target
    home> monitor lights.*           # Ctrl-C returns to the prompt

What lives here:

- ``command``: the ``busctl repl`` click command: picks the bus, the history
  file and the terminal.
- ``session``: ``Repl``, the loop: prompt, read a line, hand it to its verb,
  free of any terminal (tests drive it through a pipe).
- ``verbs``: the verbs table (``help`` prints it, Tab completes it) and what
  each verb does; a line that is no verb is a call.
- ``waiting``: requests that Ctrl-C stops waiting for (the keyboard read in
  raw mode, SIGINT), and activity handed over from the client's thread.
- ``link``: the REPL's hold on a bus: the client, the registry kept fresh,
  word of a lost connection, reconnecting.
- ``complete``: the registry of names the REPL knows, and completion.
- ``printer`` and ``views``: where the REPL writes (failures counted for a
  script's status) and what it prints (results, errors, help, tables).

It may import ``busctl.render``, the shared infrastructure at the top of
``busctl`` (the client, argument parsing, the embedded bus, exit codes),
``busctl.cli.options`` for the words of a failure every face shares, and
the public modules of ``bus``.
"""
