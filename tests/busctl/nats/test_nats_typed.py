"""The typed contract and cancel over NATS: ``busctl schema --nats``, and a cancel it cannot do.

A real ``nats-server`` and bus ``home`` hosted by two ``busctl run --nats``
subprocesses (this package's ``conftest``); ``busctl`` runs as a real
subprocess, and the client in this process attaches over NATS too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from busctl._cancel import Running, can_cancel, cancel_execute, describe
from busctl._client import Client
from tests.busctl.nats.conftest import Host

pytestmark = pytest.mark.timeout(120)


def test_schema_describes_the_commands_of_every_process(
    url: str, house: tuple[Host, Host], busctl: Callable[..., Any], tmp_path: Path
) -> None:
    done = busctl("schema", "--nats", url, "--bus", "home")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert {"alpha.where", "beta.where"} <= set(document["commands"])
    assert document["commands"]["alpha.where"]["result"] == {"type": "integer"}
    written = tmp_path / "home.asyncapi.json"
    done = busctl(
        "schema", "--nats", url, "--bus", "home", "--format", "asyncapi", "-o", str(written)
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("wrote the AsyncAPI 3.0 document of bus home (")
    assert json.loads(written.read_text())["asyncapi"].startswith("3.")


def test_schema_embedded_and_nats_together_is_a_usage_error(
    url: str, busctl: Callable[..., Any]
) -> None:
    done = busctl("schema", "--embedded", "--nats", url)
    assert done.returncode == 2
    assert done.stderr == "error: --embedded and --nats name two buses: give one\n"


def test_over_nats_a_cancel_says_it_cannot_be_done(client: Client) -> None:
    assert not can_cancel(client)
    # No request can name another over NATS: the console says so, asking nothing.
    assert cancel_execute(client, Running(1, Future())) == "remote"
    assert describe("remote", "alpha.where") == (
        "could not cancel alpha.where: over NATS no request can name another to cancel "
        "(attach to the bus's socket, on its machine, to cancel); it runs on in the bus to its end"
    )
