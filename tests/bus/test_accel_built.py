"""Where a C compiler and Python's headers are, both accelerators are built, from today's sources.

``setup.py`` marks the extensions optional, so that a machine without a
compiler installs the pure-Python code. The price: a C file that no longer
compiles fails no install, the accelerator's tests skip themselves, and the
suite passes on the Python code alone. This test is what fails then.
"""

from __future__ import annotations

import importlib
import shutil
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXTENSIONS = {
    "bus._core._speedups": ["bus/_core/_speedups*.[ch]"],
    "bus._observe._speedups_otlp": ["bus/_observe/_speedups*.[ch]", "bus/_core/_speedups_long.h"],
}


def _can_build() -> bool:
    """Whether this Python's C compiler and its headers (``Python.h``) are here."""
    cc = (sysconfig.get_config_var("CC") or "").split()
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return bool(cc) and shutil.which(cc[0]) is not None and headers.is_file()


@pytest.mark.skipif(not _can_build(), reason="no C compiler or no Python.h: the Python code runs")
@pytest.mark.parametrize("module", sorted(EXTENSIONS))
def test_each_accelerator_is_built_from_its_current_sources(module: str) -> None:
    try:
        built = importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} was not built ({exc}): see the output of `pip install -e .`")
    library = Path(str(built.__file__))
    if not library.is_relative_to(ROOT):
        pytest.skip(f"{module} is installed, not built in this checkout")
    sources = [path for pattern in EXTENSIONS[module] for path in ROOT.glob(pattern)]
    assert sources, EXTENSIONS[module]
    built_at = library.stat().st_mtime
    newer = [str(p.relative_to(ROOT)) for p in sources if p.stat().st_mtime > built_at]
    assert not newer, f"{library.name} is older than {newer}: rebuild (`pip install -e .`)"
