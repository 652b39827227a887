"""The optional C accelerator of the untraced verbs, and its switch.

``_speedups`` (``_speedups*.c``) is built when the package is installed and a
compiler is there; without one, ``pip install`` still works and the bus runs
its pure-Python code. The Python code is the reference: the extension
replaces the innermost steps of an event and a call with exactly their
semantics and hands anything unusual back to it, before it has done
anything.

* ``BusCore.fire_event`` becomes ``_speedups.FireEvent``, a method descriptor
  wrapping the Python function: the untraced fan-out to local mailboxes runs
  in C; keyword arguments, a closing, observed or distributed bus, an event
  name not in the route cache, and a full or closed mailbox go the Python way.
* A one-thread service drains its mailbox with ``_speedups.drain``, which
  runs the unobserved event deliveries and calls and returns every other
  item to ``Runtime._serve_mailbox``. A call's future is started and
  completed there only while no one else is at it (its lock free, no
  ``wait()`` or callback on it); a cancelled one goes back unstarted, and
  one that failed or whose caller gave up ends in ``Runtime._call_finished``.
* ``BusCore.execute_command`` becomes ``_speedups.ExecuteCommand``: an
  unobserved call with positional arguments that bind, to a local mailbox
  that takes it now (open, not full, not held), is made and posted in C;
  anything else goes the Python way.
* ``CommandFuture.result`` becomes ``_speedups.FutureResult``: a wait
  without a timeout from a thread that is not the bus's, and a value; a
  timeout, a service thread (deadlock detection), a cancelled or failed
  command go the Python way.
* The observer's hooks of a traced call (``Hub.call_sent``,
  ``call_started``, ``handler_returned``, ``call_ended``) and delivery
  (``delivery_started``, ``delivery_ended``) become ``_speedups.CallSent``
  and friends when ``_observe`` registers them (``install_hooks``; the core
  does not import it): a traced call or delivery no watcher sees, whose
  context holds no replay mark and no foreign parent span, and whose
  handler returns without annotating its span, is written down in C;
  anything else goes the Python way.
* A traced event no watcher or tap sees, fired from a context without a
  replay mark or a foreign parent span, is written down by the C fan-out
  itself (``install_fired``): what ``Hub.event_fired``, ``delivery_queued``
  and ``event_posted`` do, without calling them; anything else calls them.
* ``TraceSink.submit`` becomes ``_speedups.SinkSubmit`` (``install_sink``):
  a record that finds room is appended in C; a full buffer goes the Python
  way (it waits, or drops and counts).
* The ids those hooks draw come from ``random``'s own generator, read and
  advanced in C (``_speedups_ids.c``): the very words ``random.getrandbits``
  would give, in the same order, without making and taking apart an int
  per draw. Its layout is probed against ``getrandbits`` first; where it
  differs, every draw calls ``getrandbits`` (``_speedups.ids_in_c()`` says
  which).

``BUS_PURE_PYTHON=1`` in the environment forces the fallback for the
process; ``use`` switches it from then on (for tests and benchmarks: a
service thread reads the switch when it starts).

Example::

    from bus._core import _accel

    print(_accel.mode())          # "c", or "python"
    _accel.use(False)             # the pure-Python reference from now on
"""

from __future__ import annotations

import os
import queue
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = [
    "ENV",
    "available",
    "drain",
    "install",
    "install_fired",
    "install_hooks",
    "install_sink",
    "mode",
    "use",
]

ENV = "BUS_PURE_PYTHON"
"""The environment variable that forces the pure-Python path (any value but "" or "0")."""

try:
    from . import _speedups
except ImportError:  # built without a compiler: the pure-Python bus
    _speedups = None  # type: ignore[assignment]

drain: Callable[..., Any] | None = None
"""``_speedups.drain`` while accelerated, else ``None``: a service thread's mailbox loop."""

# (class, attribute, the Python function, its C wrapper): what use() switches.
_methods: list[tuple[type, str, Any, Any]] = []
_installed = False
_fire_python: Any = None  # BusCore.fire_event's Python code (tests compare with it)


def available() -> bool:
    """Whether the C extension was built and imports."""
    return _speedups is not None


def install(core: type) -> None:
    """Hand the extension the classes it works on; switch on unless ``BUS_PURE_PYTHON`` is set.

    Called once, by ``_bus`` at import, with ``BusCore``.
    """
    global _installed, _fire_python
    # Here, not at the top: these modules are loaded by the time _bus calls.
    from _thread import allocate_lock
    from concurrent.futures._base import (
        CANCELLED,
        CANCELLED_AND_NOTIFIED,
        FINISHED,
        PENDING,
        RUNNING,
    )

    from ._binding import Binder
    from ._dispatch import settle
    from ._future import CommandFuture
    from ._router import Handler
    from ._runtime import Runtime
    from ._stats import HandlerStats
    from ._worker import Worker, workers

    _installed = True
    _fire_python = core.__dict__["fire_event"]
    if _speedups is not None:
        _speedups.configure(Runtime, Handler, HandlerStats, Worker, queue.SimpleQueue, deque)
        states = (PENDING, RUNNING, FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED)
        _speedups.configure_calls(CommandFuture, allocate_lock, settle, Worker, states)
        _speedups.configure_caller(Binder, workers)
        for owner, name, wrapper in (
            (core, "fire_event", _speedups.FireEvent),
            (core, "execute_command", _speedups.ExecuteCommand),
            (CommandFuture, "result", _speedups.FutureResult),
        ):
            python = owner.__dict__[name]
            _methods.append((owner, name, python, wrapper(python)))
    use(os.environ.get(ENV, "") in ("", "0"))


def install_hooks(hub: type, *refs: Any) -> bool:
    """Switch the observer's call and delivery hooks of ``hub`` (``Hub``) to C; whether built.

    Called once, by ``_observe._hub`` at import, with what ``configure_hub``
    takes after the class (see ``_speedups.pyi``). The hooks follow ``use``.
    """
    assert _installed, "install() first"
    if _speedups is None:
        return False
    _speedups.configure_hub(hub, *refs)
    for name, wrapper in (
        ("call_sent", _speedups.CallSent),
        ("call_started", _speedups.CallStarted),
        ("handler_returned", _speedups.HandlerReturned),
        ("call_ended", _speedups.CallEnded),
        ("delivery_started", _speedups.DeliveryStarted),
        ("delivery_ended", _speedups.DeliveryEnded),
    ):
        python = hub.__dict__[name]
        _methods.append((hub, name, python, wrapper(python)))
        if drain is not None:  # already switched on: these follow
            setattr(hub, name, _methods[-1][3])
    return True


def install_fired(hub: type, fire_kind: int, name_bits: int) -> bool:
    """Write down traced events that no one watches in C as ``fire_event`` fans them out.

    Called once, by ``_observe._hub`` at import, after ``install_hooks``,
    with ``Hub``, ``_records.FIRE`` and ``_heads.NAME_BITS``. The C fan-out
    then does what ``Hub.event_fired``, ``delivery_queued`` and
    ``event_posted`` do, while those are the class's own; whether built.
    """
    assert _installed, "install() first"
    if _speedups is None:
        return False
    _speedups.configure_fired(hub, fire_kind, name_bits)
    return True


def install_sink(sink: type) -> bool:
    """Switch ``sink.submit`` (``TraceSink``) to C; whether built.

    Called once, by ``_observe._sink`` at import. It follows ``use``; a hub
    keeps the ``submit`` it found when it was made.
    """
    assert _installed, "install() first"
    if _speedups is None:
        return False
    _speedups.configure_sink(sink, deque)
    name = "submit"
    python = sink.__dict__[name]
    _methods.append((sink, name, python, _speedups.SinkSubmit(python)))
    if drain is not None:  # already switched on: it follows
        setattr(sink, name, _methods[-1][3])
    return True


def use(accelerated: bool) -> bool:
    """Run the C paths (if built) or the pure-Python ones from now on; whether C runs.

    The verbs and ``CommandFuture.result`` change at once for every bus; a
    service thread takes the mailbox loop it finds when it starts, so switch
    before making a bus.
    """
    global drain
    assert _installed, "install() first"
    on = accelerated and _speedups is not None
    for owner, name, python, wrapped in _methods:
        setattr(owner, name, wrapped if on else python)
    drain = _speedups.drain if on and _speedups is not None else None
    return on


def mode() -> str:
    """``"c"`` while the accelerator runs, ``"python"`` otherwise."""
    return "c" if drain is not None else "python"
