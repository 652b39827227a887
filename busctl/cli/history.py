"""``busctl history``: what just happened on a bus, from its ring of recent spans.

    $ busctl history                     # the last 20 calls (with results) and events
    $ busctl history 'lights.*' -n 50 --kind delivery
    $ busctl history --json | jq .result

Home Assistant's event history is the model: the bus keeps its recent spans
in memory (``Bus(ring_size=...)``), and ``history`` reads them back as one
line per call, event or delivery, newest last.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .._args import check_text
from ..render.intervene import history_line
from ..render.text import visible
from . import _output
from .options import attached, attached_command
from .watch import json_activity

__all__ = ["history"]


@click.command("history")
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option(
    "-n", "--count", type=click.IntRange(min=1), default=20, show_default=True,
    help="How many entries, the newest last.",
)  # fmt: skip
@click.option(
    "--kind",
    "kinds",
    type=click.Choice(["call", "event", "delivery"]),
    multiple=True,
    help="Only these (repeat it); default calls and events.",
)
@attached_command
def history(
    patterns: tuple[str, ...],
    count: int,
    kinds: tuple[str, ...],
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """List recent calls (with their results) and events, from the bus's span ring.

    PATTERNs are names or globs (`lights.*`); default all. --json writes one
    entry per line, its args, kwargs and result as JSON values.
    """
    params: dict[str, Any] = {"limit": count}
    if patterns:
        params["patterns"] = [check_text(p) for p in patterns]
    if kinds:
        params["kinds"] = list(dict.fromkeys(kinds))
    with attached(target, nats) as client:
        entries = client.request("history", params).get("entries", [])
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(json_activity(entry), separators=(",", ":")) + "\n")
        sys.stdout.flush()
        return
    if not entries:
        _output.console().print(
            visible("nothing in the bus's span ring matches (is tracing on?)"), markup=False
        )
        return
    out = _output.console()
    for entry in entries:
        out.print(history_line(entry), markup=False, highlight=False, soft_wrap=True)
