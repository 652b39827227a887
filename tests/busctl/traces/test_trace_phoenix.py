"""``busctl trace export --format otlp`` to a real OTLP/HTTP receiver: Arize Phoenix.

Phoenix (``arize-phoenix`` on PyPI) is installed into a virtual environment
of its own under a temporary directory (it is large, and no dependency of
the project), served on free local ports, sent the sample recording and a
file of another application's spans by a real ``busctl`` process, and asked
through its REST API what it stored. Slow; skipped when there is no package
index to install from.

What Phoenix itself cannot keep is left out of the comparison, as
``docs/traces.md`` says: NaN and infinite values, empty values, links, and
any span with a bytes attribute (it fails to store those, and logs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from busctl.traces import Span, json_value, read_trace_file

# interop: it installs about 850 MB from the package index, so `make test`
# leaves it out and `make test-interop` runs it.
pytestmark = [pytest.mark.slow, pytest.mark.interop, pytest.mark.timeout(1500)]

PHOENIX = "arize-phoenix==20.26.1"
SAMPLE = Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl"
TRACE = "6b8efff798038103d269b633813fc60c"


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


# Another application's spans, in the spellings other writers use.
FOREIGN = {
    "resourceSpans": [
        {
            "resource": {"attributes": [kv("service.name", {"stringValue": "shop"})]},
            "scopeSpans": [
                {
                    "scope": {"name": "shop.http"},
                    "spans": [
                        {
                            "traceId": TRACE,
                            "spanId": "1234567812345678",
                            "name": "handle Pay",
                            "kind": "SPAN_KIND_SERVER",
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                kv(
                                    "map",
                                    {
                                        "kvlistValue": {
                                            "values": [
                                                kv("n", {"intValue": 1}),
                                                kv("s", {"stringValue": "t"}),
                                            ]
                                        }
                                    },
                                ),
                                kv(
                                    "mixed",
                                    {
                                        "arrayValue": {
                                            "values": [{"intValue": "1"}, {"stringValue": "two"}]
                                        }
                                    },
                                ),
                                kv("ratio", {"doubleValue": "0.5"}),
                                kv("nan", {"doubleValue": "NaN"}),
                            ],
                            "events": [
                                {
                                    "timeUnixNano": "1544712660500000000",
                                    "name": "retry",
                                    "attributes": [kv("attempt", {"intValue": "2"})],
                                }
                            ],
                            "links": [{"traceId": TRACE, "spanId": "aaaaaaaaaaaaaaaa"}],
                            "status": {"code": "STATUS_CODE_ERROR", "message": "declined"},
                        },
                        {
                            "traceId": TRACE,
                            "spanId": "8765432187654321",
                            "parentSpanId": "1234567812345678",
                            "name": "charge",
                            "kind": 0,
                            "startTimeUnixNano": "1544712660100000000",
                            "endTimeUnixNano": "1544712660200000000",
                            "status": {"code": 1},
                        },
                    ],
                }
            ],
        }
    ]
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # a local test server
        return json.load(response)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("phoenix")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    try:
        installed = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", PHOENIX],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        if installed.returncode != 0 and re.search(
            r"(?i)connection|network|resolve|No matching distribution|Could not find a version",
            installed.stderr,
        ):
            pytest.skip(f"no package index to install from: {installed.stderr.strip()[-200:]}")
        assert installed.returncode == 0, installed.stderr
        port = free_port()
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(where / "data"),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        log = (where / "phoenix.log").open("w")
        server = subprocess.Popen(
            [str(venv / "bin" / "phoenix"), "serve"], env=env, stdout=log, stderr=log, cwd=where
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 300
            while True:  # until it answers (or has died)
                assert server.poll() is None, (where / "phoenix.log").read_text()[-2000:]
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=5).close()
                    break
                except (urllib.error.URLError, ConnectionError):
                    assert time.monotonic() < deadline, "Phoenix did not start in 300 s"
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=60)
            log.close()
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 850 MB


def stored(url: str, count: int) -> list[dict[str, Any]]:
    """Phoenix's spans, once it has stored ``count`` (it stores what it receives in batches)."""
    deadline = time.monotonic() + 120
    while True:
        spans: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = get(f"{url}/v1/projects/default/spans?{query}")
            spans.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Attributes as Phoenix gives them back: maps flattened to dotted keys, empties gone."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(flat(item, name + "."))
        elif item is not None and item not in ("NaN", "Infinity", "-Infinity"):
            out[name] = item
    return out


def test_phoenix_stores_every_span_as_sent(phoenix: str, tmp_path: Path) -> None:
    path = tmp_path / "both.jsonl"
    path.write_text(SAMPLE.read_text() + json.dumps(FOREIGN) + "\n")
    spans: list[Span] = read_trace_file(path).spans
    assert len(spans) > 50
    sent = subprocess.run(
        [sys.executable, "-m", "busctl", "trace", "export", str(path), "--format", "otlp",
         "--endpoint", phoenix],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert f"sent {len(spans)} spans to {phoenix}/v1/traces" in sent.stderr
    received = {(s["context"]["trace_id"], s["context"]["span_id"]): s for s in stored(
        phoenix, len(spans))}  # fmt: skip
    assert len(received) == len(spans)
    for span in spans:
        got = received[(span.trace_id, span.span_id)]
        assert got["name"] == span.name
        assert got["parent_id"] == span.parent_id
        code = "ERROR" if span.error else ("OK" if span.name == "charge" else "UNSET")
        assert got["status_code"] == code
        if span.error:
            assert got["status_message"] == (span.status_message or "")
        assert got["attributes"] == flat(json_value(span.attributes))
        assert [(e["name"], e["attributes"]) for e in got["events"]] == [
            (name, flat(json_value(attributes))) for name, attributes, _ in span.events
        ]
    pay = received[(TRACE, "1234567812345678")]
    assert pay["attributes"] == {"map.n": 1, "map.s": "t", "mixed": [1, "two"], "ratio": 0.5}
