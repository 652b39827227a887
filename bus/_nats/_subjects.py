"""Where everything of one bus lives on NATS: the subjects and queue groups.

Every subject of bus ``NAME`` starts with ``bus.NAME.`` (a dot in a bus or
service name becomes ``~``, so that each is one subject token):

- ``bus.NAME.svc.SERVICE.COMMAND``: a command's requests. Each process
  hosting the service subscribes to ``bus.NAME.svc.SERVICE.>`` in queue group
  ``q``, so replicas of a service share its calls and the calls one sender
  makes to one service arrive in the order sent (one subscription, one
  queue).
- ``bus.NAME.evt.EVENT``: events; a listener subscribes to its pattern mapped
  coarsely (``subject_for``) and filters exactly in the process.
- ``bus.NAME.reg.state|bye|sync|beat``: the registry every process keeps.
- ``bus.NAME.proc.ID.probe|state|control``: one process (``ID`` is its id).
- ``bus.NAME.control``: the control protocol for the bus as a whole.
- ``bus.NAME.feed.FEED``: where a console's subscription is published.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "POOL",
    "QUEUE",
    "Subjects",
    "listener_group",
    "subject_for",
    "token",
]

#: The queue group of every command subscription (NATS micro's default).
QUEUE = "q"
#: How the shared pool is named in subjects: ``~`` is in no service's name.
POOL = "~pool"


def token(name: str) -> str:
    """``name`` as one subject token: dots become ``~``, which names never hold."""
    return name.replace(".", "~")


def subject_for(prefix: str, pattern: str) -> str:
    """The NATS subject a listener of ``pattern`` subscribes to.

    Our ``*`` matches across dots and NATS's does not, so the literal tokens
    before the first one holding a ``*`` are kept and the rest becomes
    ``>``: ``lights.*`` -> ``lights.>``, ``*.changed`` -> ``>``. The subject
    covers every name the pattern matches (a ``*`` never matches an empty
    last token, since no name ends in a dot); the listener's process drops
    the rest with ``pattern_matches``.
    """
    lead: list[str] = []
    for part in pattern.split("."):
        if "*" in part:
            return prefix + ".".join([*lead, ">"])
        lead.append(part)
    return prefix + pattern


def listener_group(service: str, pattern: str, qualname: str) -> str:
    """The queue group shared by the replicas of one listener of one service."""
    digest = hashlib.blake2b(f"{service}\0{pattern}\0{qualname}".encode(), digest_size=8)
    return "l" + digest.hexdigest()


class Subjects:
    """The subjects of one bus, seen from one process."""

    __slots__ = (
        "bus",
        "control",
        "event_prefix",
        "feed_prefix",
        "process",
        "process_prefix",
        "reg_beat",
        "reg_bye",
        "reg_state",
        "reg_sync",
        "service_prefix",
    )

    def __init__(self, bus_name: str, process_id: str) -> None:
        base = f"bus.{token(bus_name)}"
        self.bus = base
        self.service_prefix = f"{base}.svc."
        self.event_prefix = f"{base}.evt."
        self.reg_state = f"{base}.reg.state"
        self.reg_bye = f"{base}.reg.bye"
        self.reg_sync = f"{base}.reg.sync"
        self.reg_beat = f"{base}.reg.beat"
        self.process_prefix = f"{base}.proc."
        self.process = f"{base}.proc.{process_id}"
        self.control = f"{base}.control"
        self.feed_prefix = f"{base}.feed."

    def service(self, service_token: str) -> str:
        """What a process hosting the service subscribes to."""
        return f"{self.service_prefix}{service_token}.>"

    def command(self, service_token: str, command: str) -> str:
        """Where a call of ``command`` of that service is sent."""
        return f"{self.service_prefix}{service_token}.{command}"

    def of_process(self, process_id: str, what: str) -> str:
        """A subject of one process: ``probe``, ``state`` or ``control``."""
        return f"{self.process_prefix}{process_id}.{what}"
