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

def drain(get: Callable[[], Any], worker: Any, failed: Callable[..., bool], /) -> Any:
    """Run unobserved deliveries off a one-thread mailbox; the first other item, or False."""
