"""`pip install bus` is the library; the console is an extra, and busctl says how to get it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import busctl

ROOT = Path(__file__).resolve().parents[2]


def test_the_library_needs_opentelemetry_and_pydantic_and_the_console_is_an_extra() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    names = {re.split(r"[<>=\[ ]", dep)[0] for dep in project["dependencies"]}
    assert names == {"opentelemetry-api", "opentelemetry-sdk", "pydantic"}
    console = {re.split(r"[<>=\[ ]", dep)[0] for dep in project["optional-dependencies"]["console"]}
    assert console == {
        "click",
        "rich",
        "prompt-toolkit",
        "textual",
        "opentelemetry-exporter-otlp-proto-http",
    }
    assert project["scripts"] == {"busctl": "busctl.__main__:main"}  # always installed
    assert "'.[console,dev]'" in (ROOT / "Makefile").read_text()


def test_busctl_without_the_console_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def without_textual(name: str, *args: object) -> object:
        return None if name == "textual" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_textual)
    assert busctl.missing_console_modules() == ["textual"]
    with pytest.raises(SystemExit) as exit_:
        busctl.main()
    assert exit_.value.code == 1


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_library_only_install_runs_services_and_busctl_says_what_is_missing(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = _pip(venv, "install", "--quiet", "-e", str(ROOT))
    if installed.returncode != 0 and re.search(
        r"(?i)connection|network|resolve|No matching distribution|Could not find a version",
        installed.stderr,
    ):
        pytest.skip(f"no package index to install from: {installed.stderr.strip()[-200:]}")
    assert installed.returncode == 0, installed.stderr
    python = str(venv / "bin" / "python")

    # Only the library's dependencies came with it.
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    shown = subprocess.run(
        [python, "-c", probe % (busctl.CONSOLE_MODULES,)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    assert shown.stdout.strip() == "[]"

    # The library works: a bus, a service, and the sample demo's activity lines.
    demo = subprocess.run(
        [python, "-m", "sample_services", "--duration", "0.5", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    assert " call     say_hello " in demo.stdout

    # The script is there, and says in one line how to get the rest.
    script = venv / "bin" / "busctl"
    assert script.exists()
    for argv in ([str(script), "status"], [python, "-m", "busctl", "--help"]):
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
        )
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr == (
            "error: busctl needs the console's dependencies (click, rich, prompt_toolkit, "
            "textual missing): pip install 'bus[console]'\n"
        )
