"""The optional C accelerators (bus/_core/_speedups*.c, bus/_observe/_speedups_otlp.c).

Everything else is in pyproject.toml.

``optional=True``: where it cannot be compiled (no compiler, no Python
headers), setuptools says so and installs the pure-Python bus, which runs
the same code the extension accelerates (``bus/_core/_accel.py``).
"""

from setuptools import Extension, setup

# The module and its setup (_speedups), the firing side's mailboxes (_lane),
# fire_event (_fire), a service's mailbox loop (_drain), the calls it runs
# (_call), execute_command and CommandFuture.result (_exec), and the observer's
# hooks of a traced call (_hooks) and delivery (_deliver; its span made
# current on the worker's thread, _scope), the firing side of a traced event
# (_fired), random ids as words and the caller's name (_ids), and the trace
# sink's submit (_sink).
SOURCES = [
    "_speedups",
    "_speedups_lane",
    "_speedups_fire",
    "_speedups_drain",
    "_speedups_call",
    "_speedups_exec",
    "_speedups_hooks",
    "_speedups_deliver",
    "_speedups_scope",
    "_speedups_fired",
    "_speedups_ids",
    "_speedups_sink",
]

# The module and its Encoder (_speedups_otlp), the spans of the records it
# writes (_spans; an event's and its deliveries' from templates, _events), and
# their JSON text (_text), the lines of a trace file made of them (_lines),
# and the SDK spans of the same records (_sdk: the type; _sdk_records: a
# record's spans; _sdk_spans: templates, values, spans).
OTLP_SOURCES = [
    "_speedups_otlp",
    "_speedups_otlp_lines",
    "_speedups_otlp_spans",
    "_speedups_otlp_events",
    "_speedups_otlp_text",
    "_speedups_sdk",
    "_speedups_sdk_records",
    "_speedups_sdk_spans",
]

setup(
    ext_modules=[
        Extension(
            "bus._core._speedups",
            [f"bus/_core/{name}.c" for name in SOURCES],
            depends=["bus/_core/_speedups.h", "bus/_core/_speedups_long.h"],
            optional=True,
        ),
        # The text of trace-file spans (bus/_observe/_otlp_lines.py).
        Extension(
            "bus._observe._speedups_otlp",
            [f"bus/_observe/{name}.c" for name in OTLP_SOURCES],
            depends=[
                "bus/_observe/_speedups_otlp.h",
                "bus/_observe/_speedups_sdk.h",
                "bus/_core/_speedups_long.h",
            ],
            optional=True,
        ),
    ]
)
