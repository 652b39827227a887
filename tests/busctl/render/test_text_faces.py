"""Text a bus sends is shown, never obeyed: CLI, REPL and monitor lines.

A service's docstring, result, error message and the arguments of an event
carry an OSC title sequence with BEL, a C1 CSI, DEL, a bidi override, a line
separator, a newline and rich markup. Before, they reached the terminal raw
(and ``[red]...[/]`` in an error was applied as markup, eating the text).
"""

from __future__ import annotations

import io
import json
import re
import textwrap
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from busctl._client import Client, RemoteError
from busctl.cli import cli
from tests.busctl.programs import attach_to

pytestmark = pytest.mark.timeout(60)

EVIL = "\x1b]0;pwned\x07\x9b31mred\u202eevil\u2028[red]x[/]\x7f\nnext"
SHOWN = "\\x1b]0;pwned\\x07\\x9b31mred\\u202eevil\\u2028[red]x[/]\\x7f\\nnext"
# What must never reach a terminal from a bus: C0 (but \n, \t), DEL, C1,
# line/paragraph separators, bidi embeddings, overrides and isolates.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

EVIL_SERVICE = textwrap.dedent(
    '''
    from bus import Service, command, listener

    EVIL = {evil!r}


    class Evil(Service):
        name = "evil"

        @command("evil.echo")
        def echo(self, text: str = EVIL) -> str:
            """Echo \\x1b[2J[bold]loud[/bold]\\u202e text.

            More \\x07 here.
            """
            return EVIL

        @command("evil.fail")
        def fail(self) -> None:
            """Fail."""
            raise ValueError(EVIL)

        @listener("evil.*")
        def on_any(self, *args: object) -> None:
            """Hear \\x1b[5m everything."""
    '''
).format(evil=EVIL)


@pytest.fixture
def evil_bus(start_bus, runtime_dir, tmp_path, monkeypatch):
    path = tmp_path / "evil.py"
    path.write_text(EVIL_SERVICE)
    start_bus([str(path), "--name", "evil"], runtime_dir)
    attach_to(monkeypatch, runtime_dir, columns=400)
    return runtime_dir


def run(*args: str):
    return CliRunner().invoke(cli, [*args, "--bus", "evil"])


def assert_shown_not_sent(text: str) -> None:
    found = RAW.search(text)
    assert found is None, f"raw {found.group()!r} in {text!r}"


def test_cli_shows_what_the_bus_sends_and_sends_none_of_it(evil_bus):
    introspect = run("introspect", "evil.echo")
    assert introspect.exit_code == 0, introspect.output
    assert "Echo \\x1b[2J[bold]loud[/bold]\\u202e text.\n\nMore \\x07 here." in introspect.stdout
    assert SHOWN in introspect.stdout  # the default, in the parameters table

    called = run("call", "evil.echo")
    assert called.exit_code == 0, called.output
    # Printed as JSON, so every invisible character is a JSON escape.
    assert called.stdout == (
        '"\\u001b]0;pwned\\u0007\\u009b31mred\\u202eevil\\u2028[red]x[/]\\u007f\\nnext"\n'
    )
    as_json = run("call", "evil.echo", "--json")
    assert json.loads(as_json.stdout) == EVIL
    assert_shown_not_sent(as_json.stdout)

    failed = run("call", "evil.fail", "-v")
    assert failed.exit_code != 0
    assert f"error: evil.fail raised ValueError: {SHOWN}" in failed.stderr
    multiline = SHOWN.replace("\\n", "\n")  # a traceback keeps its lines
    assert f"ValueError: {multiline}" in failed.stderr

    for verb in (["commands"], ["listeners"], ["services"], ["who-handles", "evil.x"]):
        result = run(*verb)
        assert result.exit_code == 0, result.output
        assert_shown_not_sent(result.output)
    for result in (introspect, called, failed):
        assert_shown_not_sent(result.stdout)
        assert_shown_not_sent(result.stderr)


def test_a_monitor_line_stays_one_line_and_shows_its_controls(evil_bus):
    with Client.connect("evil") as client:
        stop = threading.Event()

        def keep_firing() -> None:
            while not stop.wait(0.02):
                client.fire("evil.ping", [EVIL])

        firing = threading.Thread(target=keep_firing, name="firing")
        firing.start()
        try:
            result = run("monitor", "-n", "2", "evil.*")
        finally:
            stop.set()
            firing.join(10)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    event = next(line for line in lines if " event " in line)
    assert "evil.ping" in event
    assert "\\u202eevil\\u2028[red]x[/]\\x7f\\nnext" in event
    assert_shown_not_sent(result.output)


def test_monitor_markup_shows_brackets_as_text():
    from busctl.render.activity import activity_view
    from busctl.render.printed import activity_markup

    event = {
        "kind": "event",
        "name": "evil.ping",
        "time": "not a time",  # was float(...): a ValueError out of monitor
        "caller": EVIL,
        "args": '["[red]x[/]"]',
        "listeners": "[b]",
    }
    odd = {"kind": "[blink]odd", "name": "x", "service": "s", "duration_ms": "slow"}
    out = io.StringIO()
    console = Console(file=out, color_system=None, width=400)
    for activity in (event, odd):
        console.print(activity_markup(activity_view(activity)), highlight=False)
    text = out.getvalue()
    assert '("[red]x[/]")' in text
    assert "[b] listeners" in text
    assert f"from {SHOWN}" in text
    assert "[blink]odd" in text
    assert_shown_not_sent(text)


def test_repl_views_show_what_the_bus_sends():
    from busctl.repl.views import show_command_help, show_error, show_result, show_table

    for colour in (False, True):
        out = io.StringIO()
        console = Console(file=out, color_system=None, width=400, force_terminal=colour)
        show_result(console, EVIL, colour=colour)
        show_result(console, EVIL, colour=colour, lossy=True)
        error = RemoteError(
            -32000, EVIL, {"type": "ValueError", "traceback": f"Traceback\nValueError: {EVIL}\n"}
        )
        show_error(console, error, verbose=True, colour=colour)
        entry = {"name": "evil.echo", "signature": "()", "doc": EVIL, "owner": EVIL}
        show_command_help(console, entry, colour=colour)
        show_table(console, "services", {"services": [{"name": EVIL, "state": "[red]"}]},
                   colour=colour)  # fmt: skip
        text = out.getvalue()
        assert "[red]x[/]" in text  # shown as text, not applied
        assert "\\x9b31mred" in text  # the repr, the error, the help
        assert "\\u009b31mred" in text  # the result, as JSON (still JSON)
        # Not the SGR codes rich itself writes on a "terminal": only what came from the bus.
        assert_shown_not_sent(re.sub(r"\x1b\[[0-9;]*m", "", text))


def test_a_trace_file_names_nothing_to_the_terminal(tmp_path: Path):
    from tests.busctl.traces.test_trace_shapes import T0, event, span, write

    path = write(
        tmp_path / "evil.jsonl",
        [
            event(1, EVIL, T0),
            span(2, 1, name=EVIL, attributes={"thread.name": {"stringValue": EVIL}}),
            span(3, 1, name=EVIL, start=T0 + 5000, end=T0),  # reported: ends before it starts
        ],
    )
    from busctl.cli.replay import replay
    from busctl.cli.trace import trace

    for result in (
        CliRunner().invoke(trace, ["show", path, "--args"]),
        CliRunner().invoke(replay, [path, "--dry-run"]),
    ):
        assert result.exit_code == 0, result.output
        assert "\\x1b]0;pwned\\x07" in result.stdout
        assert "span 0000000000000003 ('\\x1b]0;pwned\\x07" in result.stderr  # once escaped
        assert_shown_not_sent(result.output)


def test_repl_completion_shows_signatures_and_defaults_visibly():
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from busctl.repl.complete import Registry, ReplCompleter
    from busctl.repl.verbs import VERBS

    registry = Registry()
    param = {"name": "text", "kind": "keyword_only", "required": False, "default": EVIL}
    registry.update({"commands": [{"name": "evil.echo", "signature": EVIL, "params": [param]}]})
    completer = ReplCompleter(registry, VERBS)
    metas = []
    for line in ("evil.e", "evil.echo te"):
        document = Document(line, len(line))
        for completion in completer.get_completions(document, CompleteEvent()):
            metas.append(completion.display_meta_text)
    assert len(metas) == 2
    for meta in metas:
        assert "\\u202eevil" in meta
        assert_shown_not_sent(meta)
