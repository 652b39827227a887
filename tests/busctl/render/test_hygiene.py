"""``busctl.render`` needs none of the console's dependencies to draw text."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_render_and_the_sample_demo_import_no_ui_library() -> None:
    # ``python -m sample_services`` prints activity lines with busctl.render:
    # it must run where only the library is installed (no click, rich,
    # prompt_toolkit or textual). Only render.printed needs rich, when called.
    code = (
        "import sys\n"
        "import busctl.render.activity, busctl.render.columns, busctl.render.printed\n"
        "import busctl.render.text, busctl.render.units\n"
        "import sample_services.__main__\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'click', 'rich', 'prompt_toolkit', 'textual'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert ast.literal_eval(out.stdout.strip()) == []
