"""NATS's own service discovery (ADR-32): every service answers ``$SRV.PING|INFO|STATS``.

So ``nats micro ls`` and the official service clients list the bus's
services, their endpoints (one per command) and their statistics. Replies
follow the ``io.nats.micro.v1.*_response`` schemas that natscli checks:
``metadata`` and each endpoint's ``data`` are objects, names use only
``A-Z a-z 0-9 - _`` (a command's dotted name is in the endpoint's
``subject`` and ``metadata.command``), times are in nanoseconds, and the
counts are the command's own statistics: every call, local or remote, and
every call whose handler raised.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from typing import TYPE_CHECKING, Any

from nats.nuid import NUID

from .._core._version import VERSION
from . import _wire as wire
from ._subjects import QUEUE

if TYPE_CHECKING:
    from .._core._router import Handler
    from .._core._runtime import Runtime
    from ._link import NatsLink

__all__ = ["VERBS", "Micro", "micro_name"]

VERBS = ("PING", "INFO", "STATS")
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?"
)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


def micro_name(name: str) -> str:
    """A bus name as NATS micro allows names: other characters become ``_``."""
    return _NAME_BAD.sub("_", name)


class Micro:
    """This process's answers to ``$SRV`` requests, one per local service."""

    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self.ids: dict[Runtime, str] = {}
        self.subscribed: dict[str, Any] = {}  # subject -> subscription
        self._nuid = NUID()

    def id_of(self, runtime: Runtime) -> str:
        sid = self.ids.get(runtime)
        if sid is None:
            sid = self.ids[runtime] = self._nuid.next().decode()
        return sid

    def subjects(self, runtimes: list[Runtime]) -> set[str]:
        """Every ``$SRV`` subject this process answers, with ``runtimes`` its services."""
        wanted = {f"$SRV.{verb}" for verb in VERBS}
        for rt in runtimes:
            name = micro_name(rt.name)
            for verb in VERBS:
                wanted.add(f"$SRV.{verb}.{name}")
                wanted.add(f"$SRV.{verb}.{name}.{self.id_of(rt)}")
        return wanted

    async def on_request(self, msg: Any) -> None:
        if not msg.reply:
            return
        parts = msg.subject.split(".")
        verb = parts[1] if len(parts) > 1 else ""
        name = parts[2] if len(parts) > 2 else None
        sid = parts[3] if len(parts) > 3 else None
        for runtime in self.link.services():
            if name is not None and micro_name(runtime.name) != name:
                continue
            if sid is not None and self.id_of(runtime) != sid:
                continue
            answer = self.answer(verb, runtime)
            if answer is not None:
                with contextlib.suppress(Exception):
                    await self.link.loop.nc.publish(msg.reply, wire.encode(answer))

    def answer(self, verb: str, runtime: Runtime) -> dict[str, Any] | None:
        """The ``$SRV`` reply of one service (``None`` for an unknown verb)."""
        service = runtime.service
        version = getattr(service, "version", None)
        if not isinstance(version, str) or not _SEMVER.fullmatch(version):
            version = VERSION
        link = self.link
        base: dict[str, Any] = {
            "name": micro_name(runtime.name),
            "id": self.id_of(runtime),
            "version": version,
            "metadata": {
                "bus": link.bus.name,
                "service": runtime.name,
                "process": link.label,
            },
        }
        commands = link.commands_of(runtime)
        if verb == "PING":
            return {"type": "io.nats.micro.v1.ping_response", **base}
        if verb == "INFO":
            doc = (type(service).__doc__ or "").strip().split("\n\n")[0] if service else ""
            return {
                "type": "io.nats.micro.v1.info_response",
                **base,
                "description": " ".join(doc.split()),
                "endpoints": [self._endpoint(runtime, h) for h in commands],
            }
        if verb == "STATS":
            started = datetime.datetime.fromtimestamp(runtime.started_at, datetime.UTC)
            return {
                "type": "io.nats.micro.v1.stats_response",
                **base,
                "started": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "endpoints": [self._stats(runtime, h) for h in commands],
            }
        return None

    def _endpoint(self, runtime: Runtime, handler: Handler) -> dict[str, Any]:
        return {
            "name": micro_name(handler.name),
            "subject": self.link.subjects.command(self.link.token_of(runtime), handler.name),
            "queue_group": QUEUE,
            "metadata": {"command": handler.name, "signature": handler.binder.text()},
        }

    def _stats(self, runtime: Runtime, handler: Handler) -> dict[str, Any]:
        stats = handler.stats
        calls, errors = stats.calls, stats.errors
        latencies = list(stats._latencies)
        # The statistics keep the latest latencies, not a running total: the
        # average of those, times the calls, is the total they imply.
        average = int(sum(latencies) / len(latencies) * 1e9) if latencies else 0
        endpoint = self._endpoint(runtime, handler)
        return {
            "name": endpoint["name"],
            "subject": endpoint["subject"],
            "queue_group": QUEUE,
            "num_requests": calls,
            "num_errors": errors,
            "last_error": stats.last_error or "",
            "processing_time": average * calls,
            "average_processing_time": average,
            "data": {"command": handler.name, "in_flight": stats.snapshot()["in_flight"]},
        }
