"""An event's *head*: what all its deliveries share while they wait, in one int.

A traced event's deliveries carry its trace id, its span id (their parent),
the time it was sent and its name. As a tuple of three ints and a name that
was 208 bytes per event in every mailbox it waited in; packed into one int
(``pack_head``: 128 + 64 + 64 + 32 bits, the last the index of the name in a
table of the names seen) it is 64 bytes, and an object the garbage collector
never tracks. Events whose head carries more (a transport's or a console
hold's attributes: ``wire``), or whose name came after the table filled,
carry the tuple ``(trace_id, span_id, name, sent_ns, wire)`` instead;
``head_parts`` reads either.

Example::

    heads = EventHeads()
    head = pack_head(trace_id, span_id, sent_ns, heads.add_name("tick"))
    assert heads.head_parts(head) == (trace_id, span_id, "tick", sent_ns, None)
"""

from __future__ import annotations

import random
import threading
from typing import Any

__all__ = ["NAMES_MAX", "NAME_BITS", "EventHeads", "event_ids", "pack_head"]

NAME_BITS = 32
"""Bits of a packed head that hold the index of the event's name."""
NAMES_MAX = 1 << 20
"""Distinct event names a hub packs into heads; events of later ones carry tuples."""
_M64 = (1 << 64) - 1
_MNAME = (1 << NAME_BITS) - 1
_bits = random.getrandbits


def pack_head(trace_id: int, span_id: int, sent_ns: int, name_index: int) -> int:
    """One int of an event's head (the hub inlines this on its hot path)."""
    return (((trace_id << 64 | span_id) << 64 | sent_ns) << NAME_BITS) | name_index


def event_ids(parent: tuple[int, int] | None) -> tuple[int, int, int]:
    """``(trace_id, parent_id, span_id)`` of an event fired under ``parent`` (or none).

    A new trace's ids are one draw of 192 bits (the trace id the top 128,
    the span id the low 64); an event under a parent span draws its span id.
    Each is drawn again while it is 0, which OpenTelemetry reserves for "no
    id". The C fan-out (``_speedups_fired.c``) draws the same.
    """
    if parent is None:
        ids = _bits(192)
        while not ids >> 64 or not ids & _M64:
            ids = _bits(192)
        return ids >> 64, 0, ids & _M64
    span_id = _bits(64)
    while not span_id:
        span_id = _bits(64)
    return parent[0], parent[1], span_id


class EventHeads:
    """The table of event names that packed heads refer to (part of the hub).

    ``add_name`` may be called from any thread; the table is only appended
    to, the list before the index, so a reader needs no lock.
    """

    def __init__(self) -> None:
        self._name_index: dict[str, int] = {}
        self._names: list[str] = []
        self._names_lock = threading.Lock()

    def add_name(self, name: str) -> int | None:
        """The index of event ``name`` for packed heads; ``None`` once the table is full."""
        with self._names_lock:
            index = self._name_index.get(name)
            if index is None and len(self._names) < NAMES_MAX:
                index = len(self._names)
                self._names.append(name)  # before the index is seen, for readers
                self._name_index[name] = index
            return index

    def head_parts(self, head: Any) -> tuple[int, int, str, int, Any]:
        """``(trace_id, span_id, name, sent_ns, wire)`` of an event's head, packed or not."""
        if type(head) is tuple:
            return head
        return (
            head >> (NAME_BITS + 128),
            (head >> (NAME_BITS + 64)) & _M64,
            self._names[head & _MNAME],
            (head >> NAME_BITS) & _M64,
            None,
        )
