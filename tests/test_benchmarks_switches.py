"""``python -m benchmarks.switches``: context switches per round trip, thread by thread."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from benchmarks.switches import IMPLEMENTATIONS, count_switches, main, render

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc"),
]


def test_counts_each_implementation_in_turn_with_every_span_exported() -> None:
    rows = count_switches(["bus", "bus-ring"], calls=300, warmup=20, repeat=2)
    assert [row.implementation for row in rows] == ["bus", "bus-ring", "bus-ring", "bus"]
    for row in rows:
        assert row.calls == 300
        assert row.us_per_call > 0
        assert row.cpu_us_per_call > 0
        assert {"caller", "service"} <= set(row.by_thread)
        # The totals are the sums of the threads'.
        assert row.voluntary == pytest.approx(sum(v for v, _ in row.by_thread.values()))
        assert row.involuntary == pytest.approx(sum(n for _, n in row.by_thread.values()))
        # Threads block on a round trip: the caller waits for every reply.
        assert row.by_thread["caller"][0] + row.by_thread["service"][0] > 0
    traced = [row for row in rows if row.implementation == "bus-ring"]
    assert all(row.spans_expected == row.spans_exported == 600 for row in traced)
    assert all("trace" in row.by_thread for row in traced)
    untraced = [row for row in rows if row.implementation == "bus"]
    assert all(row.spans_expected == 0 and "trace" not in row.by_thread for row in untraced)


def test_the_idler_runs_only_while_counting_and_is_counted_apart() -> None:
    (row,) = count_switches(["bus"], calls=200, warmup=20, idler=True)
    assert "idler" in row.by_thread
    assert not [t for t in threading.enumerate() if t.name == "switches/idler"]


def test_an_implementation_it_cannot_count_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="cannot count 'floor'"):
        count_switches(["bus", "floor"], calls=10)


def test_main_writes_a_table_or_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-n", "100", "--implementation", "bus", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["implementation"] == "bus"
    assert row["calls"] == 100
    assert set(row["by_thread"]) >= {"caller", "service"}
    assert main(["-n", "100", "--implementation", "bus-file"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("implementation")
    assert "bus-file" in table
    assert "200/200" in table


def test_main_refuses_a_count_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-n", "0"])
    assert exit_info.value.code == 2
    assert "--calls and --repeat must be at least 1" in capsys.readouterr().err


def test_every_countable_implementation_renders() -> None:
    rows = count_switches(IMPLEMENTATIONS, calls=50, warmup=10)
    table = render(rows)
    for name in IMPLEMENTATIONS:
        assert f"\n{name} " in table
