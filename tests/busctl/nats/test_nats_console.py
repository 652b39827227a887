"""Every face of the console on a bus across processes, attached over NATS.

Bus ``home`` runs in two ``busctl run --nats`` processes (``conftest.house``):
``alpha`` and ``shared`` in one, ``beta`` and ``shared`` in the other. Real
``busctl`` subprocesses attach with ``--nats URL --bus home`` and must see,
and act on, the bus as a whole.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from busctl._client import Client
from busctl.cli import cli
from tests.busctl.nats.conftest import eventually, on_home

pytestmark = pytest.mark.timeout(120)


def test_list_names_the_bus_and_every_process(url, house, busctl):
    first, second = house
    done = busctl("list", "--nats", url, "--json")
    assert done.returncode == 0, done.stderr
    [home] = [b for b in json.loads(done.stdout) if b["name"] == "home"]
    assert {p["label"] for p in home["processes"]} == {first.label, second.label}
    assert home["transport"] == "nats"
    shown = busctl("list", "--nats", url)
    assert shown.returncode == 0, shown.stderr
    [row] = [line for line in shown.stdout.splitlines() if line.startswith("home ")]
    assert row.split()[1] == "2"
    assert first.label in row
    assert second.label in row


def test_services_shows_each_service_with_the_processes_hosting_it(url, house, busctl):
    first, second = house
    done = busctl(*on_home(url, "services", "--json"))
    assert done.returncode == 0, done.stderr
    hosts = {
        s["name"]: sorted(i["process"] for i in s["instances"])
        for s in json.loads(done.stdout)
        if s.get("kind") != "pool"
    }
    assert hosts == {
        "alpha": [first.label],
        "beta": [second.label],
        "shared": sorted([first.label, second.label]),
    }
    table = busctl(*on_home(url, "services"))
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "INSTANCES", "STATE"]
    [shared] = [row for row in rows if row.startswith("shared ")]
    assert first.label in shared
    assert second.label in shared


def test_call_reaches_the_service_in_whichever_process_hosts_it(url, house, busctl):
    # One process answers the console; at least one of the two calls crosses to the other.
    first, second = house
    for command, host in (("alpha.where", first), ("beta.where", second)):
        done = busctl(*on_home(url, "call", command))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == host.pid
    chained = busctl(*on_home(url, "call", "alpha.ask_beta", "--json"))
    assert chained.returncode == 0, chained.stderr
    assert json.loads(chained.stdout) == [first.pid, second.pid]


def test_emit_reaches_the_listeners_of_every_process(url, house, busctl, client):
    done = busctl(*on_home(url, "emit", "ping.hello", "emit-token"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fired ping.hello to 2 listeners"
    for command in ("alpha.heard", "beta.heard"):
        eventually(
            lambda command=command: ["emit-token"] in client.execute(command),
            what=f"{command} never heard the ping",
        )


def test_monitor_shows_the_traffic_of_every_process(url, house, watch, client):
    first, second = house
    monitor = watch(*on_home(url, "monitor"))
    monitor.wait_for(monitor.err, lambda line: line.startswith("monitoring everything on bus home"))
    seen: set[tuple[str, str]] = set()

    def both() -> bool:
        client.execute("alpha.where")
        client.execute("beta.where")
        while not monitor.out.empty():
            words = monitor.out.get_nowait().split()
            if len(words) > 4 and words[3] == "return":  # LABEL TIME TRACE KIND NAME ...
                seen.add((words[0], words[4]))
        return {(first.label, "alpha.where"), (second.label, "beta.where")} <= seen

    eventually(both, what=f"the monitor saw only {seen}")
    assert monitor.stop(signal.SIGINT) == 0


def _resources(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(the resource's service.instance.id, span) for every span in a trace file."""
    for line in path.read_text(encoding="utf-8").splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            attributes = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}
            instance = attributes["service.instance.id"]["stringValue"]
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    yield instance, span


def test_capture_writes_the_spans_of_every_process_in_one_file(url, house, watch, client, tmp_path):
    path = tmp_path / "home.jsonl"
    capture = watch(*on_home(url, "capture", "-o", str(path)))
    capture.wait_for(capture.err, lambda line: line.startswith("capturing spans of bus home"))
    assert client.execute("alpha.ask_beta") == [house[0].pid, house[1].pid]

    def served() -> dict[str, tuple[str, str]] | None:
        """Handler name -> (its process's resource id, its trace id), once both are in."""
        if not path.exists():
            return None
        found = {
            span["name"]: (instance, span["traceId"])
            for instance, span in _resources(path)
            if span["kind"] == 2  # SERVER: where each handler ran
        }
        return found if {"alpha.ask_beta", "beta.where"} <= found.keys() else None

    found = eventually(served, what="the capture never held both handlers' spans")
    (alpha_process, alpha_trace), (beta_process, beta_trace) = (
        found["alpha.ask_beta"],
        found["beta.where"],
    )
    # Two processes (two resources), one trace: the chain crossed processes in the file.
    assert alpha_process != beta_process
    assert alpha_trace == beta_trace
    assert capture.stop(signal.SIGINT) == 0
    summary = capture.wait_for(capture.err, lambda line: line.startswith("captured "))
    assert str(path) in summary


def test_replay_sends_a_capture_back_to_the_listeners_of_every_process(
    url, house, watch, client, busctl, tmp_path
):
    path = tmp_path / "pings.jsonl"
    capture = watch(*on_home(url, "capture", "-o", str(path), "ping.*"))
    capture.wait_for(capture.err, lambda line: line.startswith("capturing spans of bus home"))
    client.fire("ping.replayed", ["replay-token"])
    for command in ("alpha.heard", "beta.heard"):
        eventually(
            lambda command=command: client.execute(command).count(["replay-token"]) == 1,
            what=f"{command} never heard the ping",
        )
    eventually(
        lambda: path.exists() and "ping.replayed" in path.read_text(encoding="utf-8"),
        what="the capture never held the event",
    )
    assert capture.stop(signal.SIGINT) == 0
    done = busctl(*on_home(url, "replay", str(path), "--fast", "--only", "ping.*", "--json"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # One event, though three processes' spans (its producer, two consumers) recorded it.
    assert (report["sent"], report["events"], report["skipped"]) == (1, 1, [])
    # Each process's listener hears the replayed event too: twice in all.
    for command in ("alpha.heard", "beta.heard"):
        eventually(
            lambda command=command: client.execute(command).count(["replay-token"]) == 2,
            what=f"{command} never heard the replayed ping",
        )


def test_status_shows_the_bus_and_each_process(url, house, busctl):
    first, second = house
    done = busctl(*on_home(url, "status"))
    assert done.returncode == 0, done.stderr
    fields = dict(
        line.split(":", 1) for line in done.stdout.split("\n\n")[0].splitlines() if ":" in line
    )
    assert fields["bus"].strip() == "home"
    assert fields["processes"].strip().startswith("2 (")
    rows = {line.split()[0]: line.split() for line in done.stdout.split("\n\n")[1].splitlines()}
    assert rows[first.label][1] == str(first.pid)
    assert rows[first.label][2] == "running"
    assert "alpha," in rows[first.label]
    assert "beta," in rows[second.label]
    as_json = json.loads(busctl(*on_home(url, "status", "--json")).stdout)
    assert {p["label"] for p in as_json["processes"]} == {first.label, second.label}
    assert as_json["totals"]["processes"] == 2


def test_the_registry_verbs_say_where_each_entry_lives(url, house):
    # In this process, through click (the same code as the subprocesses above, quicker).
    first, second = house
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, [*args, "--nats", url, "--bus", "home"])
        assert result.exit_code == 0, result.output
        return result

    commands = {c["name"]: c for c in json.loads(run("commands", "--json").output)}
    assert sorted(commands["shared.where"]["instances"]) == sorted([first.label, second.label])
    assert commands["alpha.where"]["instances"] == [first.label]
    listeners = json.loads(run("listeners", "--json").output)
    assert sorted(li["process"] for li in listeners if li["pattern"] == "ping.*") == sorted(
        [first.label, second.label]
    )
    routing = json.loads(run("who-handles", "ping.x", "--json").output)
    assert {li["process"] for li in routing["listeners"]} == {first.label, second.label}
    table = run("who-handles", "ping.x").output
    assert "PROCESS" in table
    shown = run("introspect", "shared.where").output
    [instances] = [line for line in shown.splitlines() if line.startswith("instances:")]
    assert first.label in instances
    assert second.label in instances


def test_a_call_to_a_command_no_one_has_is_not_found(url, house, busctl):
    done = busctl(*on_home(url, "call", "alpha.wehre"))
    assert done.returncode == 4
    assert done.stderr.strip() == (
        "error: no command named 'alpha.wehre'; did you mean 'alpha.where' or 'alpha.heard'?"
    )


def test_the_repl_attaches_over_nats_and_acts_on_the_whole_bus(url, house, busctl):
    first, second = house
    done = busctl(
        *on_home(url, "repl"), input="alpha.where\nbeta.where\nemit ping.repl 1\nservices\n"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert str(first.pid) in lines
    assert str(second.pid) in lines
    assert any("INSTANCES" in line for line in lines)
    assert any(line.startswith("shared") and first.label in line for line in lines)


def test_the_repl_monitor_says_which_process_each_line_comes_from(url, house, client):
    from tests.busctl.repl.test_repl import Session

    first, second = house
    session = Session(Client.connect("home", nats=url))
    try:
        start = len(session.out.getvalue())
        session.type("monitor alpha.where beta.where\r")
        session.out.wait_for("Ctrl-C stops", after=start)

        def both() -> bool:
            client.execute("alpha.where")
            client.execute("beta.where")
            lines = [line.split() for line in session.out.getvalue()[start:].splitlines()]
            seen = {(w[0], w[3]) for w in lines if len(w) > 3 and w[2] == "return"}
            return {(first.label, "alpha.where"), (second.label, "beta.where")} <= seen

        eventually(both, what="the REPL's monitor did not name both processes")
        at = len(session.out.getvalue())
        session.type("\x03")
        session.out.wait_for("monitor stopped", after=at)
    finally:
        assert session.finish() == 0


def test_the_tui_shows_the_bus_its_processes_and_the_instances(url, house, client):
    from busctl.tui._source import ClientSource
    from busctl.tui.app import BusctlApp
    from busctl.tui.tables import ServicesTable
    from tests.busctl.tui.pilot_helpers import plain, until

    first, second = house
    source = ClientSource(Client.connect("home", nats=url))

    async def body() -> None:
        app = BusctlApp(source=source, poll=0.1, drain=0.05)
        async with app.run_test(size=(160, 35)) as pilot:
            services = app.query_one(ServicesTable)
            await until(pilot, lambda: {"alpha", "beta", "shared"} <= services.items.keys())
            assert [label for _, label in services._columns][:2] == ["name", "instances"]
            shared = services.full_row("shared")[1].plain
            assert first.label in shared
            assert second.label in shared
            line = plain(app.busline)
            assert "2 processes:" in line
            assert f"{first.label} alpha, shared" in line
            assert f"{second.label} beta, shared" in line
            assert app.sub_title.endswith("· 2 processes")
            client.execute("beta.where")
            log = app.activity_log
            # Each step says which process it was seen in (beta runs in the second).
            await until(
                pilot,
                lambda: any(
                    a["name"] == "beta.where"
                    and a["kind"] == "return"
                    and a.get("process") == second.label
                    for a in log.entries()
                ),
            )

    try:
        asyncio.run(body())
    finally:
        source.close()


@pytest.mark.timeout(180)
def test_bench_nats_prints_the_three_ratios_of_one_run(url, busctl):
    done = busctl("bench", "--nats", "--url", url, "-n", "30", "--json", timeout=170)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["url"] == url
    assert report["calls"] == 30
    assert report["remote_ratio"] > 0
    assert report["local_ratio"] > 0
    assert report["events_per_s"] > 0
    assert set(report["met"]) == {"remote_ratio", "events_per_s", "local_ratio"}


def test_the_same_name_without_nats_is_another_bus(house, busctl):
    # --nats '' attaches over the socket: no bus home runs there.
    done = busctl("services", "--nats", "", "--bus", "home")
    assert done.returncode == 3
    assert "no bus" in done.stderr
