"""What the console says when a bus across processes is not there, or goes away.

No server, no such bus on the server, a host killed mid-run, a bus whose
processes all vanished, and ``--nats embedded``'s server stopping with the
``busctl run`` that started it: each is one line on stderr and the usual
exit status, never a traceback.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import pytest
from click.testing import CliRunner

from busctl._client import Client, ConnectionLost
from busctl._nats_server import _accepts
from busctl.cli import cli
from tests.bus.nats.conftest import NatsServer, free_port
from tests.busctl.nats.conftest import eventually, services

pytestmark = pytest.mark.timeout(90)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def nowhere() -> str:
    """A URL where no NATS server listens."""
    return f"nats://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    "verb",
    [
        ["services", "--bus", "home"],
        ["call", "alpha.where", "--bus", "home"],
        ["monitor"],
        ["list"],
    ],
    ids=lambda verb: verb[0],
)
def test_no_server_is_one_line_and_exit_3(verb, nowhere, busctl):
    done = busctl(*verb, "--nats", nowhere)
    assert done.returncode == 3
    assert one_line(done.stderr) == f"error: cannot join NATS at {nowhere}: no server answered"


@pytest.mark.parametrize("face", ["repl", "tui"])
def test_the_faces_say_the_same_without_a_server(face, nowhere, busctl):
    done = busctl(face, "--nats", nowhere, "--bus", "home")
    assert done.returncode == 3
    assert one_line(done.stderr) == f"error: cannot join NATS at {nowhere}: no server answered"


def test_run_with_no_server_is_the_library_line(nowhere, busctl):
    done = busctl("run", "--nats", nowhere, "--name", "home", *services("Alpha"))
    assert done.returncode == 3
    assert one_line(done.stderr) == f"error: cannot join NATS at {nowhere}: no server answered"


def test_no_such_bus_on_the_server_names_the_ones_there(nats_server, hosts, busctl):
    url = nats_server.url
    assert one_line(busctl("services", "--nats", url, "--bus", "present").stderr) == (
        f"error: no bus 'present' on {url}; no bus is there; "
        f"start one with `busctl run --nats {url} --name present`"
    )
    present = hosts(["--nats", url, "--name", "present", *services("Alpha")])
    done = busctl("services", "--nats", url, "--bus", "absent")
    assert done.returncode == 3
    assert one_line(done.stderr) == (
        f"error: no bus 'absent' on {url}; buses there: present; "
        f"start one with `busctl run --nats {url} --name absent`"
    )
    # Without --bus, the one bus there; with two there, a choice to make.
    alone = busctl("call", "alpha.where", "--nats", url)
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout) == present.pid
    hosts(["--nats", url, "--name", "second", *services("Beta")])
    two = busctl("status", "--nats", url)
    assert two.returncode == 3
    assert one_line(two.stderr) == (
        "error: 2 buses are running (present, second): choose one with --bus NAME"
    )
    bad = busctl("status", "--nats", url, "--bus", "/tmp/x.sock")
    assert bad.returncode == 3
    assert "with --nats, --bus names a bus on that server" in one_line(bad.stderr)


def test_a_host_killed_mid_run(nats_server, hosts, busctl):
    url = nats_server.url
    # The process that stays answers the console; its calls to others give up after 1 s.
    stays = hosts(["--nats", url, "--name", "kill", "--remote-timeout", "1", *services("Alpha")])
    dies = hosts(["--nats", url, "--name", "kill", *services("Gamma")])
    on_kill = ["--nats", url, "--bus", "kill"]
    listed = json.loads(busctl("services", "--json", *on_kill).stdout)
    assert {s["name"] for s in listed if s.get("kind") != "pool"} == {"alpha", "gamma"}
    dies.kill()
    # A call to the dead process's command is retried (no responders) until
    # the caller's deadline, then fails as unavailable: a timeout (exit 6),
    # not a handler's failure, and never "no such command" (the bus forgets
    # a silent process only after 5 s). In this process: no start-up to wait.
    call = CliRunner().invoke(cli, ["call", "gamma.where", *on_kill])
    assert call.exit_code == 6, call.output
    assert one_line(call.stderr) == (
        "error: gamma.where: no instance of service 'gamma' answered within 1 s "
        "(ServiceUnavailableError)"
    )
    # `services` meanwhile: the live process's services, and a note naming the
    # one that does not answer, as long as the bus still lists it.
    shown = busctl("services", *on_kill)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split()[0] for line in shown.stdout.splitlines()[1:]]
    assert "alpha" in rows
    assert "gamma" not in rows
    if shown.stderr:
        assert one_line(shown.stderr) == (
            f"note: process {dies.label} of bus kill does not answer (stopped, killed, or "
            "too busy): what it serves is not listed"
        )

    def forgotten() -> bool:
        status = json.loads(busctl("status", "--json", *on_kill).stdout)
        return [p["label"] for p in status["processes"]] == [stays.label]

    eventually(forgotten, timeout=20, what="the killed process never left the bus")
    # Forgotten, its command is unknown, as any other.
    gone = busctl("call", "gamma.where", *on_kill)
    assert gone.returncode == 4
    assert one_line(gone.stderr).startswith("error: no command named 'gamma.where'")


def test_run_peer_timeout_sets_how_soon_a_killed_process_leaves(nats_server, hosts):
    url = nats_server.url
    quick = ["--nats", url, "--name", "quick", "--peer-timeout", "0.5"]
    stays = hosts([*quick, *services("Alpha")])
    dies = hosts([*quick, *services("Gamma")])
    with Client.connect("quick", nats=url) as client:

        def labels() -> list[str]:
            return sorted(p["label"] for p in client.inspect()["processes"])

        eventually(lambda: labels() == sorted([stays.label, dies.label]), what="both joined")
        dies.kill()
        killed = time.monotonic()
        eventually(lambda: labels() == [stays.label], timeout=10, what="the killed one left")
        # With the default (5 s) it stays listed at least 4 s after a SIGKILL
        # (5 s after its last beat, a second apart at most).
        assert time.monotonic() - killed < 3.5


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("nan", "'nan' is not a finite number of seconds"),
        ("inf", "'inf' is not a finite number of seconds"),
        ("0", "0.0 is not in the range x>0"),
        ("soon", "'soon' is not a valid number of seconds"),
    ],
)
@pytest.mark.parametrize("option", ["--peer-timeout", "--remote-timeout"])
def test_run_timeouts_must_be_positive_finite_seconds(option, value, said):
    done = CliRunner().invoke(cli, ["run", "--nats", "nats://127.0.0.1:1", option, value])
    assert done.exit_code == 2
    assert done.output.strip().splitlines()[-1] == f"Error: Invalid value for '{option}': {said}."


def test_monitor_ends_when_no_process_of_the_bus_is_left(nats_server, hosts, watch):
    url = nats_server.url
    only = hosts(["--nats", url, "--name", "gone", *services("Alpha")])
    monitor = watch("monitor", "--nats", url, "--bus", "gone")
    monitor.wait_for(monitor.err, lambda line: line.startswith("monitoring everything"))
    only.kill()
    assert monitor.process.wait(60) == 3
    line = monitor.wait_for(monitor.err, lambda line: line.startswith("error:"))
    assert line.strip() == (
        f"error: bus gone went away (no process of it answers on {url} any more: "
        "they stopped, or were killed)"
    )


def test_embedded_server_runs_for_the_bus_and_stops_on_sigterm(hosts, busctl):
    host = hosts(["--nats", "embedded", "--name", "emb", *services("Alpha")])
    first = host.said[0]
    assert first == f"nats-server started at {host.url} (it stops with this bus)\n"
    assert host.url.startswith("nats://127.0.0.1:")
    done = busctl("call", "alpha.where", "--nats", host.url, "--bus", "emb")
    assert json.loads(done.stdout) == host.pid
    assert host.stop(signal.SIGTERM) == 0
    assert "bus emb stopped\n" in host.process.stdout
    assert not _accepts(host.url)  # stopped before run returned


def test_ctrl_c_stops_the_embedded_server_after_the_bus_it_serves(hosts):
    # Ctrl-C reaches the terminal's whole job; the server must not go first and
    # leave the bus logging "lost the NATS server; reconnecting" as it closes.
    host = hosts(["--nats", "embedded", "--name", "emb3", *services("Alpha")], own_group=True)
    assert host.process.interrupt() == 0
    assert "bus emb3 stopped\n" in host.process.stdout
    assert host.process.stderr == [], "".join(host.process.stderr)
    assert not _accepts(host.url)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_embedded_server_dies_with_a_killed_run(hosts):
    host = hosts(["--nats", "embedded", "--name", "emb2", *services("Alpha")])
    assert _accepts(host.url)
    host.kill()  # SIGKILL: run has no chance to stop it itself
    eventually(lambda: not _accepts(host.url), what="the server outlived its run")


def test_the_bus_going_away_while_attached_ends_the_client(nats_server, hosts):
    url = nats_server.url
    only = hosts(["--nats", url, "--name", "brief", *services("Alpha")])
    client = Client.connect("brief", nats=url)
    lost: list[str] = []
    client.on_disconnect(lambda: lost.append(str(client.error)))
    try:
        assert client.execute("alpha.where") == only.pid
        only.stop()
        with pytest.raises(ConnectionLost, match="no process of it answers"):
            client.inspect()
        assert client.closed
        assert lost == [f"no process of it answers on {url} any more: they stopped, or were killed"]
    finally:
        client.close()


def test_a_server_that_goes_away_ends_the_client(hosts):
    server = NatsServer()
    try:
        only = hosts(["--nats", server.url, "--name", "short", *services("Alpha")])
        client = Client.connect("short", nats=server.url)
        try:
            assert client.execute("alpha.where") == only.pid
            server.stop()
            eventually(lambda: client.closed, timeout=30, what="the client never gave up")
            assert str(client.error) == f"lost the NATS server at {server.url}"
        finally:
            client.close()
    finally:
        server.stop()


def test_monitor_hears_a_process_that_joined_after_it(nats_server, hosts, watch):
    # The feed's lease is renewed every few seconds, and a renewal starts it
    # in the processes that joined since.
    url = nats_server.url
    hosts(["--nats", url, "--name", "late", *services("Alpha")])
    monitor = watch("monitor", "--nats", url, "--bus", "late")
    monitor.wait_for(monitor.err, lambda line: line.startswith("monitoring everything"))
    newcomer = hosts(["--nats", url, "--name", "late", *services("Beta")])
    with Client.connect("late", nats=url) as client:

        def heard() -> bool:
            client.execute("beta.where")
            while not monitor.out.empty():
                words = monitor.out.get_nowait().split()
                if words[:1] == [newcomer.label] and "beta.where" in words:
                    return True
            return False

        eventually(heard, timeout=30, what="the monitor never heard the newcomer")
