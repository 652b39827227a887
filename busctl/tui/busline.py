"""The line under the header that says how the bus is: attached, lost, slow, failing.

    line = BusLine("connecting…", id="busline")
    failed = line.show(inspected, not_shown=12)    # on every poll: {name: error}
    # a bus across processes (NATS): home · 3 processes: vm:7 greeter · vm:9 lights, ...
    line.went_away("home", "connection reset")     # the bus is gone: r reconnects

A service the bus marks ``failed`` is counted first on the line, so no
terminal is too narrow to show it, and announced once (a notification) when
it fails; one that recovers and fails again is announced again.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from busctl.render.text import visible

__all__ = ["BusLine"]


class BusLine(Static):
    """The bus's state in one line (its height is fixed by ``app.tcss``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed_seen: set[str] = set()

    def show(self, inspected: dict[str, Any], *, not_shown: int = 0) -> dict[str, str]:
        """The bus as ``inspect()`` says; return its failed services with their errors.

        ``not_shown``: activity the log could not keep up with (counted, never
        silently lost).
        """
        bus = inspected.get("bus", {})
        totals = inspected.get("totals", {})
        failed = self._failed(inspected)
        line = Text.assemble((visible(bus.get("name", "?")), "bold"))
        processes = inspected.get("processes")
        if isinstance(processes, list):
            line.append(" · ")
            self._processes(line, processes, inspected.get("services", ()))
        else:
            line.append(visible(f" {bus.get('state', '')}"))
        line.append(" · ")
        if failed:
            # First on the line, so no terminal is too narrow to show it.
            names = visible(", ".join(failed))
            noun = "service" if len(failed) == 1 else "services"
            line.append(f"✗ {len(failed)} {noun} failed: {names}", style="bold reverse red")
            line.append(" · ")
        spans_lost = inspected.get("tracing", {}).get("dropped", 0)
        if isinstance(spans_lost, int) and spans_lost > 0:
            # Near the front too: a trace with holes misleads whoever reads it.
            line.append(f"⚠ {spans_lost} spans dropped", style="bold reverse yellow")
            line.append(" · ")
        handler_failures = int(totals.get("failed", 0) or 0)
        line.append(
            f"{totals.get('services', 0)} services · {totals.get('commands', 0)} commands · "
            f"{totals.get('listeners', 0)} listeners · handled {totals.get('handled', 0)}"
        )
        if handler_failures:
            line.append(f" ({handler_failures} failed)", style="bold red")
        if not_shown:
            # Under a flood the log shows the newest activity; the rest is counted.
            line.append(f" · {not_shown} activity not shown", style="yellow")
        # One line of fixed size: no layout pass on every poll.
        self.update(line, layout=False)
        return failed

    @staticmethod
    def _processes(line: Text, processes: list[Any], services: Any) -> None:
        """``3 processes: vm:7 greeter, lights · vm:9 thermostat``: who hosts what."""
        hosted: dict[str, list[str]] = {}
        for service in services if isinstance(services, list) else ():
            if not isinstance(service, dict) or service.get("kind") == "pool":
                continue
            for instance in service.get("instances") or ():
                if isinstance(instance, dict):
                    hosted.setdefault(str(instance.get("process")), []).append(
                        str(service.get("name"))
                    )
        count = len(processes)
        line.append(f"{count} process{'es' if count != 1 else ''}: ", style="bold")
        # By label: the process answering the console lists itself first, and
        # that one changes from poll to poll.
        listed = sorted(
            (p for p in processes if isinstance(p, dict)), key=lambda p: str(p.get("label"))
        )
        for index, process in enumerate(listed):
            label = str(process.get("label", "?"))
            if index:
                line.append(" · ")
            if process.get("state") == "unreachable":
                line.append(visible(f"{label} not answering"), style="bold red")
                continue
            line.append(visible(label), style="bold")
            line.append(visible(" " + (", ".join(hosted.get(label, [])) or "no services")))

    def not_attached(self, reason: str) -> None:
        """Attaching failed; ``r`` retries."""
        self.update(
            Text.assemble(
                ("not attached: ", "bold red"), visible(reason), ("  press r to retry", "bold")
            )
        )

    def went_away(self, name: str, reason: str) -> None:
        """The bus went away; ``r`` reconnects."""
        self.update(
            Text.assemble(
                (visible(f"bus {name} went away"), "bold red"),
                visible(f" ({reason})  "),
                ("press r to reconnect", "bold reverse"),
            )
        )

    def slow(self, name: str, seconds: float) -> None:
        """An ``inspect`` has waited ``seconds`` for its answer."""
        self.update(Text(visible(f"bus {name} has not answered for {seconds:.0f} s…"), "yellow"))

    def _failed(self, inspected: dict[str, Any]) -> dict[str, str]:
        failed = {
            str(service.get("name", "?")): str(service.get("error") or "no error given")
            for service in inspected.get("services", ())
            if isinstance(service, dict) and service.get("state") == "failed"
        }
        for name, error in failed.items():
            if name not in self._failed_seen:
                # The error is the bus's text: shown, never read as markup.
                message = visible(f"service {name} failed: {error}")
                self.app.notify(message, severity="error", timeout=10, markup=False)
        self._failed_seen = set(failed)  # one that recovers and fails again is announced again
        return failed
