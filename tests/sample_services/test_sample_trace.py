"""The sample recording ships with the package: found from anywhere, in a wheel too.

A ``pip install`` user has no checkout, so no ``traces/`` folder: the file is
package data of ``sample_services``, found by ``sample_services.sample_trace()``
and by ``--sample`` on ``busctl trace show``, ``trace export`` and ``replay``.
``traces/sample.jsonl`` in a checkout is a link to it, so paths in the docs
keep working.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import sample_services
from busctl._exit import ExitStatus
from busctl.cli import cli
from busctl.traces import read_trace_file
from tests.busctl.programs import run_busctl

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)


def test_sample_trace_is_the_recording_in_the_package() -> None:
    path = sample_services.sample_trace()
    assert path.is_file()
    assert path.parent == Path(sample_services.__file__).resolve().parent
    trace_file = read_trace_file(path)
    assert not trace_file.errors
    assert len(trace_file.traces()) >= 5
    names = {span.name for span in trace_file.spans}
    assert "send greet_event" in names


def test_the_checkout_path_links_to_it() -> None:
    link = ROOT / "traces" / "sample.jsonl"
    assert link.is_symlink()
    assert os.readlink(link) == "../sample_services/sample.jsonl"
    assert link.resolve() == sample_services.sample_trace().resolve()


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no traces/ in it, as a pip user has."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def test_trace_show_and_export_take_sample_from_any_directory(elsewhere: Path) -> None:
    shown = CliRunner().invoke(cli, ["trace", "show", "--sample", "--json"])
    assert shown.exit_code == 0, shown.output
    summaries = json.loads(shown.stdout)
    assert len(summaries) == len(read_trace_file(sample_services.sample_trace()).traces())

    out = elsewhere / "sample.chrome.json"
    exported = CliRunner().invoke(
        cli, ["trace", "export", "--sample", "--format", "chrome", "-o", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads(out.read_text())["traceEvents"]


def test_replay_takes_sample(elsewhere: Path) -> None:
    result = CliRunner().invoke(cli, ["replay", "--sample", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "greet_event" in result.stdout
    assert "nothing sent" in result.output


@pytest.mark.parametrize("verb", [["trace", "show"], ["trace", "export"], ["replay"]])
def test_file_and_sample_go_one_at_a_time(elsewhere: Path, verb: list[str]) -> None:
    extra = ["--format", "chrome"] if verb[-1] == "export" else []
    neither = CliRunner().invoke(cli, [*verb, *extra])
    assert neither.exit_code == ExitStatus.USAGE
    assert "missing FILE (or --sample" in neither.stderr
    both = CliRunner().invoke(cli, [*verb, *extra, "x.jsonl", "--sample"])
    assert both.exit_code == ExitStatus.USAGE
    assert "give FILE or --sample, not both" in both.stderr


# -- the wheel ------------------------------------------------------------------------------

# What pip needs to build the project: the rest of the checkout stays out.
_PROJECT = ("pyproject.toml", "README.md", "bus", "busctl", "sample_services", "benchmarks")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built by pip from a copy of the project (the checkout is left alone)."""
    source = tmp_path_factory.mktemp("project")
    for name in _PROJECT:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name,
                source / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheels")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    offline = ("Could not find a version", "Failed to establish", "Network is unreachable")
    if built.returncode != 0 and any(reason in built.stderr for reason in offline):
        pytest.skip(f"pip cannot fetch the build backend here: {built.stderr.strip()[-200:]}")
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("bus-*.whl")
    return found


@pytest.mark.timeout(300)
def test_the_wheel_ships_the_sample_and_busctl_finds_it(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("sample_services/sample.jsonl") == (
            sample_services.sample_trace().read_bytes()
        )
        archive.extractall(tmp_path / "site")  # a pure-Python wheel: installing is unpacking
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    where = subprocess.run(
        [sys.executable, "-c", "import sample_services; print(sample_services.sample_trace())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()) == tmp_path / "site" / "sample_services" / "sample.jsonl"
    shown = run_busctl(env, "trace", "show", "--sample", "--limit", "1", cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("trace ")
    assert "greet_event" in shown.stdout
