"""busctl steps into a bus across processes: stub, hold, release, history over --nats.

Bus ``home`` runs in two ``busctl run --nats`` processes (``conftest.house``):
``alpha`` and ``shared`` in one, ``beta`` and ``shared`` in the other. Real
``busctl`` subprocesses attach with ``--nats URL --bus home``; holds and stubs
act in the process where the work runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from busctl._client import Client
from tests.busctl.nats.conftest import Host, eventually, on_home

pytestmark = pytest.mark.timeout(120)


def call_in_background(url: str, name: str) -> Future[Any]:
    """Call ``name`` over NATS on a thread of its own: a held call's caller waits."""
    out: Future[Any] = Future()

    def run() -> None:
        try:
            with Client.connect("home", nats=url) as client:
                out.set_result(client.execute(name, [], {}, timeout=25))
        except BaseException as exc:
            out.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return out


def test_stub_stands_in_where_the_command_is_served(
    url: str, house: tuple[Host, Host], busctl: Callable[..., Any]
) -> None:
    _, second = house
    done = busctl(*on_home(url, "stub", "beta.where", "--returns", "7", "--times", "5"))
    assert done.returncode == 0, done.stderr
    assert f"stubbed beta.where on beta in {second.label}: returns 7" in done.stdout
    called = busctl(*on_home(url, "call", "--json", "beta.where"))
    assert json.loads(called.stdout) == 7
    [stub] = json.loads(busctl(*on_home(url, "stubs", "--json")).stdout)
    assert (stub["name"], stub["process"], stub["calls"]) == ("beta.where", second.label, 1)
    status = busctl(*on_home(url, "status"))
    assert "intervening:  1 stub, 0 holds" in status.stdout
    done = busctl(*on_home(url, "unstub", "beta.where"))
    assert done.returncode == 0, done.stderr
    assert "the real handler is back" in done.stdout
    assert json.loads(busctl(*on_home(url, "call", "--json", "beta.where")).stdout) == second.pid


def test_hold_catches_a_call_where_it_is_served_and_release_lets_it_run(
    url: str, house: tuple[Host, Host], busctl: Callable[..., Any]
) -> None:
    first, _ = house
    done = busctl(*on_home(url, "hold", "alpha.where", "--calls", "--for", "1m"))
    assert done.returncode == 0, done.stderr
    assert "hold " in done.stdout
    try:
        waiting = call_in_background(url, "alpha.where")

        def held_items() -> list[dict[str, Any]]:
            listing = json.loads(busctl(*on_home(url, "held", "--json")).stdout)
            return [i for i in listing["held"] if i["name"] == "alpha.where"]

        [item] = eventually(held_items, what="the call to be held")
        assert item["process"] == first.label
        assert str(item["id"]).endswith(f"@{first.label}")
        assert not waiting.done()
        done = busctl(*on_home(url, "release", str(item["id"])))
        assert done.returncode == 0, done.stderr
        assert waiting.result(30) == first.pid
    finally:
        busctl(*on_home(url, "unhold", "alpha.where"))
    assert json.loads(busctl(*on_home(url, "held", "--json")).stdout)["holds"] == []


def test_history_of_the_whole_bus_says_which_process(
    url: str, house: tuple[Host, Host], busctl: Callable[..., Any]
) -> None:
    first, _ = house
    assert busctl(*on_home(url, "call", "alpha.where")).returncode == 0
    done = busctl(*on_home(url, "history", "alpha.where", "-n", "1", "--json"))
    assert done.returncode == 0, done.stderr
    [entry] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (entry["name"], entry["result"], entry["process"]) == (
        "alpha.where",
        first.pid,
        first.label,
    )
