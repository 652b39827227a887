"""``busctl bench`` runs the benchmarks of a source checkout, and says how when there is none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from busctl.cli.bench import find_checkout
from tests.busctl.programs import run_busctl

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[3]
QUICK = ["bench", "--scenario", "command_roundtrip", "-n", "200", "--repeat", "1", "--json"]


def test_the_repository_is_a_checkout_and_other_places_are_not(tmp_path: Path) -> None:
    assert find_checkout(tmp_path, ROOT) == ROOT
    assert find_checkout(tmp_path) is None
    other = tmp_path / "other"
    (other / "benchmarks").mkdir(parents=True)
    (other / "benchmarks" / "__init__.py").write_text("")
    (other / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    assert find_checkout(other) is None  # their benchmarks are not ours
    (other / "pyproject.toml").write_text("not toml [")
    assert find_checkout(other) is None


def test_the_wheel_leaves_benchmarks_out() -> None:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        found = tomllib.load(file)["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [pattern for pattern in found if pattern.startswith("benchmarks")]


def _run(argv: list[str], cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return run_busctl(env, *argv, cwd=cwd, timeout=100)


def test_bench_from_anywhere_finds_the_checkout_busctl_runs_from(tmp_path: Path) -> None:
    # As after `pip install -e .`: busctl is the checkout's, the shell is elsewhere.
    done = _run(QUICK, cwd=tmp_path, pythonpath=[ROOT])
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert {m["scenario"] for m in results["measurements"]} == {"command_roundtrip"}


@pytest.fixture
def installed_elsewhere(tmp_path: Path) -> Path:
    """A copy of busctl outside any checkout, as a wheel installs it."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "busctl", site / "busctl", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def test_bench_in_a_checkout_finds_it_in_the_current_directory(installed_elsewhere: Path) -> None:
    done = _run(QUICK, cwd=ROOT, pythonpath=[installed_elsewhere, ROOT])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["measurements"]


def test_bench_without_a_checkout_says_how_in_one_line(
    installed_elsewhere: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    # bus and sample_services as installed; no benchmarks anywhere it looks
    library = tmp_path / "lib"
    for package in ("bus", "sample_services"):
        shutil.copytree(
            ROOT / package, library / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    done = _run(["bench", "--quick"], cwd=elsewhere, pythonpath=[installed_elsewhere, library])
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "error: busctl bench runs the benchmarks of a source checkout: in a clone of the "
        "repository, run `busctl bench` or `python -m benchmarks`\n"
    )


def test_bench_pins_unless_unpinned_and_follows_rss_when_asked(tmp_path: Path) -> None:
    argv = ["bench", "--scenario", "memory", "--quick", "--memory-events", "2000", "--json"]
    pinned = json.loads(_run(argv, cwd=tmp_path, pythonpath=[ROOT]).stdout)
    assert pinned["rss"]["events"] == 2000
    assert pinned["settings"]["pin"] is True
    done = _run([*argv, "--unpinned"], cwd=tmp_path, pythonpath=[ROOT])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["settings"]["pinned_cpu"] is None


def test_bench_fails_when_a_figure_does_not_count(tmp_path: Path) -> None:
    # With the SDK disabled nothing is traced: the traced runs cannot count.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = run_busctl(
        {**env, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true"},
        *QUICK,
        cwd=tmp_path,
        timeout=100,
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)  # the report is still printed
    errors = report["errors"]
    assert any("bus-app: BenchmarkError: the bus records no span here" in e for e in errors)
    assert any("obvious-traced: BenchmarkError: the SDK records no span" in e for e in errors)
    assert done.stderr.startswith("error: ")
    assert "do not count" in done.stderr
