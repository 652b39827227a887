"""Types of the C accelerator (``_speedups*.c``); see ``_accel`` for what it does."""

from collections.abc import Callable
from typing import Any

class FireEvent:
    """``BusCore.fire_event`` with its fan-out in C; wraps the Python function."""

    __wrapped__: Callable[..., None]
    def __init__(self, fallback: Callable[..., None], /) -> None: ...
    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., None]: ...
    def __call__(self, bus: Any, name: str, /, *args: Any, **kwargs: Any) -> None: ...

class ExecuteCommand:
    """``BusCore.execute_command`` with its local call in C; wraps the Python function."""

    __wrapped__: Callable[..., Any]
    def __init__(self, fallback: Callable[..., Any], /) -> None: ...
    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., Any]: ...
    def __call__(self, bus: Any, name: str, /, *args: Any, **kwargs: Any) -> Any: ...

class FutureResult:
    """``CommandFuture.result`` with its plain wait in C; wraps the Python method."""

    __wrapped__: Callable[..., Any]
    def __init__(self, fallback: Callable[..., Any], /) -> None: ...
    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., Any]: ...
    def __call__(self, future: Any, timeout: float | None = None, /) -> Any: ...

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

def configure_caller(binder: type, workers: dict[int, Any], /) -> None:
    """What ExecuteCommand and FutureResult work on; once, after the other two."""

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
