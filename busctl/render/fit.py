"""Fitting a table to a width: free text gives way, names and numbers stay whole.

    share(30, [40, 80], least=8)                    # [15, 15]
    cut("(room: str) -> LightState", 12)            # '(room: str)…'
    cut("/srv/plugins/greeter", 9, keep_end=True)   # '…/greeter'

Every face fits the same way: the TUI's live tables (``busctl.tui.tables``)
and the tables ``busctl`` and the REPL print (``busctl.render.printed``). The
columns a table marks ``flex`` (``busctl.render.columns``) share the width the
others leave, and a cell that does not fit is cut with an ellipsis.
"""

from __future__ import annotations

__all__ = ["cut", "share"]


def share(room: int, wants: list[int], least: int, weights: list[int] | None = None) -> list[int]:
    """Split ``room`` cells among columns that want ``wants`` cells each.

    Each column first gets ``least`` (or what it wants, if less); what room is
    left goes to columns that want more, in proportion to their ``weights``
    (all 1 by default), a column that wants less than its share getting what
    it wants and leaving the rest to the others.
    """
    weights = weights or [1] * len(wants)
    widths = [min(want, least) for want in wants]
    left = max(room - sum(widths), 0)
    more = sorted(
        (i for i in range(len(wants)) if wants[i] > widths[i]),
        key=lambda i: (wants[i] - widths[i]) / weights[i],
    )
    weight = sum(weights[i] for i in more)
    for i in more:
        extra = min(wants[i] - widths[i], left * weights[i] // weight)
        widths[i] += extra
        left, weight = left - extra, weight - weights[i]
    return widths


def cut(text: str, width: int, *, keep_end: bool = False) -> str:
    """``text`` in at most ``width`` cells: cut with ``…`` at its end (or start).

    Widths are terminal cells (a CJK character takes two); ``keep_end`` keeps
    the end, where a path or a dotted name says the most.
    """
    from rich.cells import cell_len, get_character_cell_size

    if cell_len(text) <= width:
        return text
    if width < 1:
        return ""
    room = width - 1  # the ellipsis takes one
    chars = reversed(text) if keep_end else iter(text)
    kept: list[str] = []
    for char in chars:
        room -= get_character_cell_size(char)
        if room < 0:
            break
        kept.append(char)
    return "…" + "".join(reversed(kept)) if keep_end else "".join(kept) + "…"
