"""How the CLI's tests start a ``busctl`` they send Ctrl-C to (not a test module)."""

from __future__ import annotations

import sys

BUSCTL = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'busctl'; from busctl import main; main()",
]
"""``busctl`` with Python's own Ctrl-C handling, whatever the parent ignores: a
test run from a shell's background job inherits SIGINT ignored."""
