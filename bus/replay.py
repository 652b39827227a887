"""Marking what a replay sends, so that its spans say what they replay.

    from bus.replay import replaying

    with replaying(recorded_trace_id, recorded_span_id):
        bus.fire_event("motion.detected", "hall")   # its PRODUCER span is marked

Inside the block, the SERVER span of each command executed and the PRODUCER
span of each event fired get ``bus.replayed = true`` and a link to the
recorded span. ``busctl replay`` uses it in process, and the control
protocol's ``replay_of`` param does the same for a bus over its socket.
"""

from __future__ import annotations

from ._observe._replay import replaying

__all__ = ["replaying"]
