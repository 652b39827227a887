"""What every face of busctl draws alike: text made safe, times, activity lines, tables.

    from busctl.render.activity import activity_line
    from busctl.render.columns import COMMANDS
    from busctl.render.text import visible
    from busctl.render.units import latency

    latency(0.42)                        # '420 µs', in the CLI, the REPL and the TUI
    [c.header for c in COMMANDS.columns] # the commands table, written once

What lives here, each thing in one place:

- ``text``: control characters from a bus or a file made visible
  (``visible``, ``visible_json``, ``visible_markup``, ``clipped``).
- ``units``: latencies, durations, wall-clock times, trace offsets.
- ``activity``: one step of a bus's activity as text parts and as one line.
- ``columns``: the services, commands and listeners tables: columns, cells
  and their tones.
- ``printed``: the rich side shared by the two printing faces (CLI, REPL):
  tables, coloured activity lines, highlighted JSON.

The CLI (``busctl.cli``), the REPL (``busctl.repl``) and the TUI
(``busctl.tui``) import from here; a face keeps only how it styles the same
cells (rich markup or Textual). This package imports nothing from the faces
and nothing from ``bus``; only ``printed`` imports rich, and only when
called, so ``python -m sample_services`` prints activity lines with the
library's dependencies alone.
"""
