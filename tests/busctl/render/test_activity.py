"""One step of activity, drawn alike by every face: ``busctl.render.activity``."""

from __future__ import annotations

from busctl.render.activity import activity_line, activity_view
from busctl.render.printed import activity_markup


def test_activity_lines_without_colour() -> None:
    call = {
        "kind": "call",
        "name": "say_hello",
        "time": 0.0,
        "caller": "cli",
        "service": "greeter",
        "args": '["Alice"]',
    }
    line = activity_line(call)
    assert 'call     say_hello              cli → greeter ("Alice")' in line
    failed = {
        "kind": "return",
        "name": "probe.fail",
        "time": 0.0,
        "service": "probe",
        "error": {"type": "ValueError", "message": "boom"},
        "duration_ms": 0.5,
    }
    assert "!! ValueError: boom  500 µs" in activity_line(failed)
    event = {
        "kind": "event",
        "name": "lights.changed",
        "time": 0.0,
        "caller": "lights",
        "kwargs": '{"room": "hall", "on": true}',
        "listeners": 1,
    }
    line = activity_line(event)
    assert 'lights.changed         from lights (room="hall", on=true)  1 listener' in line


def test_markup_in_names_is_escaped() -> None:
    activity = {"kind": "event", "name": "[bold]x", "time": 0.0, "args": '["[red]"]'}
    line = activity_markup(activity_view(activity))
    assert "\\[bold]x" in line


RETURN = {
    "kind": "return",
    "name": "lights.turn_on",
    "time": 1_700_000_000.5,
    "service": "lights",
    "result": '{"room":"hall","on":true}',
    "duration_ms": 0.194,
    "queued_ms": 0.05,
    "trace_id": "5c1e0a" + "0" * 26,
}


def test_the_parts_of_a_return() -> None:
    view = activity_view(RETURN)
    assert (view.mark, view.kind, view.name, view.who) == (
        "←",
        "return",
        "lights.turn_on",
        "lights",
    )
    assert view.detail == '= {"room":"hall","on":true}'
    assert (view.took, view.queued) == ("194 µs", "50 µs")
    assert view.tail == "194 µs (queued 50 µs)"
    assert view.trace == "5c1e0a"
    assert not view.failed


def test_the_line_with_its_trace() -> None:
    line = activity_line(RETURN, trace=True)
    assert line.split()[1] == "5c1e0a"
    assert line.endswith('lights = {"room":"hall","on":true}  194 µs (queued 50 µs)')


def test_every_face_draws_the_same_parts() -> None:
    # The CLI's and the REPL's monitor print activity_line / activity_markup;
    # the TUI's activity log puts the same parts in its columns.
    from busctl.tui._format import activity_cells

    view = activity_view(RETURN)
    cells = [str(cell) for cell in activity_cells(RETURN)]
    assert cells == [
        view.time,
        f"{view.mark} {view.kind}",
        view.name,
        view.place,
        view.took,
        view.detail,
    ]
    line = activity_line(view)
    markup = activity_markup(view)
    for part in (view.time, view.name, view.who, view.detail, view.tail):
        assert part in line
        assert part in markup


def test_arguments_and_results_are_cut_and_kept_on_one_line() -> None:
    long = {
        "kind": "call",
        "name": "x",
        "args": '["' + "a" * 500 + '"]',
        "kwargs": '{"k": "1\\n2"}',
    }
    view = activity_view(long)
    assert len(view.detail) == 80
    assert view.detail.endswith("…")
    odd = {"kind": "call", "name": "x", "kwargs": '{"k": "1\\n2"}'}
    assert activity_view(odd).detail == '(k="1\\n2")'
    assert "\n" not in activity_line(odd)


def test_activity_matches_is_monitor_s_filters() -> None:
    from busctl.render.activity import activity_matches

    call = {
        "kind": "call",
        "service": "lights",
        "caller": "automation",
        "trace_id": "ab12cd" + "0" * 26,
    }
    failed = {**call, "kind": "return", "error": {"type": "ValueError"}}
    delivery = {"kind": "delivery", "service": "other", "trace_id": "ffee00" + "0" * 26}
    assert activity_matches(call)
    assert activity_matches(delivery)
    assert [activity_matches(a, errors=True) for a in (call, failed, delivery)] == [
        False,
        True,
        False,
    ]
    assert activity_matches(call, service="automation")  # the caller counts
    assert not activity_matches(delivery, service="lights")
    assert activity_matches(failed, kind="call")
    assert not activity_matches(delivery, kind="call")
    assert activity_matches(delivery, kind="event")
    assert not activity_matches(call, kind="event")
    assert activity_matches(call, trace="AB12CD")
    assert not activity_matches(delivery, trace="ab12")
    assert not activity_matches({"kind": "event"}, trace="ab")  # no trace id: not that trace


def test_on_a_bus_across_processes_the_place_says_which_process_first():
    from busctl.render.activity import activity_view

    record = {"kind": "return", "name": "lights.get", "time": 0, "service": "lights"}
    assert activity_view(record).place == "lights"
    assert activity_view({**record, "process": "vm:7612"}).place == "vm:7612 lights"


def test_a_line_of_a_bus_across_processes_starts_with_its_process():
    from busctl.render.activity import activity_line, activity_view
    from busctl.render.printed import activity_markup

    record = {"kind": "return", "name": "lights.get", "time": 0, "service": "lights"}
    plain_line = activity_line(record)
    assert activity_line(record, process="vm:7612") == f"vm:7612 {plain_line}"
    assert activity_line(record, process=None) == plain_line
    marked = activity_markup(activity_view(record), process="vm:[bold]7612")
    assert marked.startswith("[cyan]vm:\\[bold]7612[/] [dim]")  # the label is never markup


def test_an_event_of_a_bus_across_processes_counts_its_local_listeners():
    # The firing process counts only its own listeners: "0 listeners" read as
    # "no one heard it" while a listener in another process did.
    from busctl.render.activity import activity_view

    record = {"kind": "event", "name": "clock.tick", "time": 0, "caller": "scheduler"}
    assert activity_view({**record, "listeners": 2}).listeners == "2 listeners"
    assert activity_view({**record, "listeners": 0, "process": "vm:1"}).listeners == (
        "0 local listeners"
    )
    one = activity_view({**record, "listeners": 1, "process": "vm:1"})
    assert one.tail == "1 local listener"
