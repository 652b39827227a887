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

class CallSent:
    """``Hub.call_sent`` with a traced, unwatched call's record made in C."""

    def __init__(self, fallback: Callable[..., Any], /) -> None: ...

class CallStarted:
    """``Hub.call_started`` with the handler's span entered in C."""

    def __init__(self, fallback: Callable[..., Any], /) -> None: ...

class HandlerReturned:
    """``Hub.handler_returned`` with the handler's context left in C."""

    def __init__(self, fallback: Callable[..., Any], /) -> None: ...

class CallEnded:
    """``Hub.call_ended`` with the flat CALL record made and submitted in C."""

    def __init__(self, fallback: Callable[..., Any], /) -> None: ...

class DeliveryStarted:
    """``Hub.delivery_started`` with the listener's span entered in C."""

    def __init__(self, fallback: Callable[..., Any], /) -> None: ...

class DeliveryEnded:
    """``Hub.delivery_ended`` with the flat DELIVERY record made and submitted in C."""

    def __init__(self, fallback: Callable[..., Any], /) -> None: ...

class SinkSubmit:
    """``TraceSink.submit`` with its append in C; a full buffer goes to the Python method."""

    __wrapped__: Callable[..., None]
    def __init__(self, fallback: Callable[..., None], /) -> None: ...

def configure_fired(hub: type, fire_kind: int, name_bits: int, /) -> None:
    """What the firing side of a traced event works on; once, after ``configure_hub``."""

def configure_sink(sink: type, deque: type, /) -> None:
    """What ``SinkSubmit`` works on: ``TraceSink`` and ``collections.deque``; once."""

def ids_in_c() -> bool:
    """Whether the hooks draw ids from ``random``'s generator in C, not by ``getrandbits``."""

def configure_hub(
    hub: type,
    record: type,
    span: type,
    call_kind: int,
    delivery_kind: int,
    name_bits: int,
    var: Any,
    context: type,
    span_key: str,
    replay_key: str,
    freeze: Callable[..., Any],
    atomic_types: frozenset[type],
    getrandbits: Callable[[int], int],
    caller_tls: Any,
    caller: Callable[[], str],
    /,
) -> None:
    """What the hooks of a traced call work on; once, after ``configure``."""

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
