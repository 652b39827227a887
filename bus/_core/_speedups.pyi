"""Types of the C accelerator (``_speedups*.c``); see ``_accel`` for what it does."""

from collections.abc import Callable
from typing import Any

class FireEvent:
    """``BusCore.fire_event`` with its untraced fan-out in C; wraps the Python function."""

    __wrapped__: Callable[..., None]
    def __init__(self, fallback: Callable[..., None], /) -> None: ...
    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., None]: ...
    def __call__(self, bus: Any, name: str, /, *args: Any, **kwargs: Any) -> None: ...

def configure(
    runtime: type, handler: type, stats: type, worker: type, simple_queue: type, deque: type, /
) -> None:
    """The classes the accelerator works on; once."""

def configure_calls(
    future: type,
    allocate_lock: Callable[[], Any],
    settle: Callable[..., bool],
    worker: type,
    states: tuple[str, str, str, str, str],
    /,
) -> None:
    """What drain's calls work on: ``CommandFuture``, its lock and states; once."""

def drain(
    get: Callable[[], Any],
    worker: Any,
    failed: Callable[..., bool],
    finished: Callable[..., bool],
    /,
) -> Any:
    """Run unobserved deliveries and calls off a one-thread mailbox.

    Returns the first other item, or False when the thread must end.
    """
