"""The control protocol's methods and their params.

Each method takes the session it serves (a ``Session``: a socket
``Connection``, or a NATS responder's), its params (a dict) and the request
id, and returns the result, or ``ASYNC`` when the reply is sent later
(``execute``). Wrong params raise ``RpcError(-32602)`` naming the param; the
bus's own errors are mapped to the codes of ``docs/protocol.md`` by
``error_reply`` (``_rpc_errors``, whose names this module re-exports for the
servers that use both).
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._core._contract import InvalidArgumentError, convert_arguments
from .._core._patterns import MAX_NAME, pattern_matches, shown, validate_name, validate_pattern
from .._observe._replay import replaying
from .._observe._schema import asyncapi, json_schema
from . import protocol
from ._rpc_errors import (
    KNOWN_ERRORS,
    RpcError,
    described,
    error_reply,
    handler_error,
    invalid_argument,
    service_failed,
)
from ._subs import MAX_PATTERNS
from .protocol import ErrorCode

if TYPE_CHECKING:
    from .._core._router import Handler
    from ._served import ServedBus

__all__ = [
    "ASYNC",
    "KNOWN_ERRORS",
    "METHODS",
    "RpcError",
    "Session",
    "bad_arguments",
    "error_reply",
    "handler_error",
    "invalid_argument",
    "service_failed",
]


class Session(Protocol):
    """What a method needs of whoever it answers: a socket connection or a NATS responder."""

    @property
    def bus(self) -> ServedBus:
        """The bus served."""

    @property
    def address(self) -> str:
        """Where the session is served: a socket path, or a NATS subject."""

    def execute(
        self,
        rid: Any,
        handler: Handler,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        replay_of: tuple[str, str] | None = None,
    ) -> None:
        """Run a command and send the reply to ``rid`` when it finishes or times out.

        ``args`` and ``kwargs`` are bound and converted for ``handler`` already
        (``Bus.execute_converted`` sends them without binding them again).
        """

    def subscribe(
        self, topic: str, patterns: tuple[str, ...], buffer: int, *, lossless: bool = False
    ) -> Any:
        """Open a subscription (``lossless``: the bus waits rather than drop its spans); its id."""

    def unsubscribe(self, sid: Any) -> int | None:
        """End a subscription: how many notifications it dropped, ``None`` if unknown."""

    def executing(self, rid: Any) -> Any:
        """The future of the command this session's request ``rid`` runs, or ``None``."""


DEFAULT_TIMEOUT = 30.0
DEFAULT_BUFFER = 10_000
MAX_BUFFER = 1_000_000
TOPICS = protocol.TOPICS

#: A method's result meaning "the reply will be sent later".
ASYNC: Any = object()


# -- params ---------------------------------------------------------------------


def _bad(name: str, message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, f"invalid params: {message}", {"param": name})


def _only(params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise _bad(key, f"unknown param {key!r} (expected: {expected})")


def _name(params: dict[str, Any]) -> str:
    if "name" not in params:
        raise _bad("name", "'name' is required")
    value = params["name"]
    if not isinstance(value, str) or not value:
        raise _bad("name", f"'name' must be a non-empty string, not {_json_type(value)}")
    if len(value) > MAX_NAME:
        raise _bad("name", f"'name' {shown(value)} is longer than {MAX_NAME} characters")
    return value


def _arguments(params: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    args = params.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list):
        raise _bad("args", f"'args' must be an array, not {_json_type(args)}")
    kwargs = params.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise _bad("kwargs", f"'kwargs' must be an object, not {_json_type(kwargs)}")
    return args, kwargs


def _replay_of(params: dict[str, Any]) -> tuple[str, str] | None:
    value = params.get("replay_of")
    if value is None:
        return None
    message = '\'replay_of\' must be {"trace_id": 32 hex digits, "span_id": 16 hex digits}'
    if not isinstance(value, dict) or set(value) != {"trace_id", "span_id"}:
        raise _bad("replay_of", message)
    trace_id, span_id = value["trace_id"], value["span_id"]
    for text, width in ((trace_id, 32), (span_id, 16)):
        if not isinstance(text, str) or len(text) != width or text.strip("0123456789abcdef"):
            raise _bad("replay_of", message)
        if int(text, 16) == 0:
            raise _bad("replay_of", message)
    return trace_id, span_id


def _seconds(params: dict[str, Any], key: str, default: float | None) -> float | None:
    value = params.get(key, default)
    if value is not None and (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise _bad(key, f"{key!r} must be a number of seconds >= 0 or null, not {value!r}")
    return None if value is None else float(value)


def _flag(params: dict[str, Any], key: str) -> bool:
    value = params.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(key, f"{key!r} must be true or false, not {_json(value)}")
    return value


def _positive_int(params: dict[str, Any], key: str, default: int, most: int) -> int:
    value = params.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise _bad(key, f"{key!r} must be an integer from 1 to {most}, not {_json(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _json(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- methods ----------------------------------------------------------------------


def describe(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Who is listening: name, pid, started_at, version, address, methods."""
    _only(params, ())
    from .._core._version import VERSION

    bus = conn.bus
    return {
        "protocol": protocol.VERSION,
        "name": bus.name,
        "pid": bus.pid,
        "started_at": bus.started_at,
        "version": VERSION,
        "address": conn.address,
        "methods": list(METHODS),
    }


def inspect(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """The ``Bus.inspect()`` snapshot."""
    _only(params, ())
    return conn.bus.inspect()


def execute(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Run a command; the reply is sent when it finishes or times out."""
    _only(params, ("name", "args", "kwargs", "timeout", "replay_of", "check"))
    name = _name(params)
    args, kwargs = _arguments(params)
    timeout = _seconds(params, "timeout", DEFAULT_TIMEOUT)
    replay_of = _replay_of(params)
    check = _flag(params, "check")
    handler = conn.bus.router.command(name)
    converted, kwargs = _converted(conn, handler, args, kwargs)
    if check:  # a console's form asks before it sends: converted, and nothing run
        return {"checked": True}
    conn.execute(rid, handler, converted, kwargs, timeout, replay_of=replay_of)
    return ASYNC


def _converted(
    conn: Session, handler: Handler, args: list[Any], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of ``handler``'s command, bound and converted to its annotated types.

    The one binding of a console's call: the session sends what this returns
    with ``execute_converted``, which does not bind it again.

    Raises:
        RpcError: ``-32002`` they do not bind, ``-32012`` one does not
            convert.
    """
    try:
        return convert_arguments(handler, args, kwargs)
    except InvalidArgumentError as exc:
        raise invalid_argument(exc) from None
    except TypeError as exc:
        raise bad_arguments(conn, handler.name, exc) from None


def bad_arguments(conn: Session, name: str, exc: TypeError) -> RpcError:
    """``-32002`` for arguments that do not bind to command ``name``."""
    if isinstance(exc, InvalidArgumentError):
        return invalid_argument(exc)
    try:
        signature = conn.bus.router.command(name).binder.text()
    except Exception:
        signature = None
    return RpcError(ErrorCode.BAD_ARGUMENTS, str(exc), described(exc, signature=signature))


def fire(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Fire an event; the result counts the listeners its name matches."""
    _only(params, ("name", "args", "kwargs", "replay_of", "check"))
    name = _name(params)
    args, kwargs = _arguments(params)
    replay_of = _replay_of(params)
    check = _flag(params, "check")
    contract = conn.bus.events.get(name)
    if contract is not None:  # a declared payload type: converted and checked, always
        try:
            converted, kwargs = contract.convert(tuple(args), kwargs)
        except InvalidArgumentError as exc:
            raise invalid_argument(exc) from None
        args = list(converted)
    if check:
        try:
            validate_name(name)
        except (TypeError, ValueError) as exc:
            raise _bad("name", str(exc)) from None
        return {"checked": True}
    try:
        with replaying(*replay_of) if replay_of else contextlib.nullcontext():
            listeners = conn.bus.fire_counted(name, *args, **kwargs)
    except InvalidArgumentError as exc:
        raise invalid_argument(exc) from None
    except (TypeError, ValueError) as exc:  # the name: what fire_event would raise for it
        raise _bad("name", str(exc)) from None
    return {"listeners": listeners}


def wait_idle(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Wait until no mailbox holds work and no handler runs (at most 60 s)."""
    _only(params, ("timeout",))
    timeout = _seconds(params, "timeout", 10.0)
    return {"idle": conn.bus.wait_idle(min(60.0, 10.0 if timeout is None else timeout))}


def who_handles(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """The exact routing of a name: its command and the listeners it reaches."""
    _only(params, ("name",))
    name = _name(params)
    router = conn.bus.router
    commands = {h.name: h for h in router.commands()}
    listeners = router.listeners()  # in delivery order
    handler = commands.get(name)
    command = None
    if handler is not None:
        command = {**handler.describe(), "threads": _threads(handler)}
    reached = [
        {**h.describe(), "threads": _threads(h)} for h in listeners if pattern_matches(h.name, name)
    ]
    suggestions: list[str] = []
    if command is None and not reached:
        known = set(commands) | {h.name for h in listeners if "*" not in h.name}
        suggestions = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
    return {"name": name, "command": command, "listeners": reached, "suggestions": suggestions}


def _threads(handler: Any) -> list[str]:
    return [w.thread_name for w in list(handler.destination.workers)]


def subscribe(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Start sending ``activity`` or ``spans`` notifications to this connection."""
    _only(params, ("topic", "patterns", "buffer", "lossless"))
    topic = params.get("topic")
    if topic not in TOPICS:
        raise _bad("topic", f"'topic' must be one of {', '.join(TOPICS)}, not {_json(topic)}")
    patterns = params.get("patterns", ["*"])
    if patterns is None:
        patterns = ["*"]
    if not isinstance(patterns, list) or not patterns:
        raise _bad("patterns", "'patterns' must be a non-empty array of name patterns")
    if len(patterns) > MAX_PATTERNS:
        raise _bad("patterns", f"'patterns' may hold at most {MAX_PATTERNS}, not {len(patterns)}")
    for pattern in patterns:
        try:
            validate_pattern(pattern)
        except (TypeError, ValueError) as exc:
            raise _bad("patterns", str(exc)) from None
    buffer = _positive_int(params, "buffer", DEFAULT_BUFFER, MAX_BUFFER)
    lossless = params.get("lossless", False)
    if lossless is None:
        lossless = False
    if not isinstance(lossless, bool):
        raise _bad("lossless", f"'lossless' must be true or false, not {_json(lossless)}")
    if lossless and topic != "spans":
        raise _bad("lossless", "'lossless' applies to the spans topic only")
    subscription = conn.subscribe(topic, tuple(patterns), buffer, lossless=lossless)
    return {"subscription": subscription}


def unsubscribe(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """End a subscription; the result says how many notifications it dropped."""
    _only(params, ("subscription",))
    if "subscription" not in params:
        raise _bad("subscription", "'subscription' is required")
    sid = params["subscription"]
    dropped = conn.unsubscribe(sid)
    if dropped is None:
        raise RpcError(
            ErrorCode.NO_SUCH_SUBSCRIPTION, f"no subscription {_json(sid)} on this connection",
            {"subscription": sid},
        )  # fmt: skip
    return {"dropped": dropped}


def traces(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Recent traces from the bus's ring, as one OTLP ``TracesData`` object."""
    _only(params, ("limit", "trace_id"))
    bus = conn.bus
    trace_id = params.get("trace_id")
    bus.flush_traces(timeout=1.0)  # what already ran is in the ring
    wanted: set[int]
    if trace_id is not None:
        if not isinstance(trace_id, str) or len(trace_id) != 32:
            raise _bad("trace_id", "'trace_id' must be 32 hexadecimal digits")
        try:
            wanted = {int(trace_id, 16)}
        except ValueError:
            raise _bad("trace_id", "'trace_id' must be 32 hexadecimal digits") from None
    else:
        limit = _positive_int(params, "limit", 20, max(1, bus.spans.capacity))
        wanted = set(bus.spans.trace_ids(limit))
    return bus.spans.otlp(trace_ids=wanted)


def schema(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """The bus's typed contract: a JSON Schema document, or an AsyncAPI 3.0 one."""
    _only(params, ("format", "name"))
    fmt = params.get("format", "jsonschema")
    if fmt is None:
        fmt = "jsonschema"
    if fmt not in protocol.SCHEMA_FORMATS:
        formats = " or ".join(protocol.SCHEMA_FORMATS)
        raise _bad("format", f"'format' must be {formats}, not {_json(fmt)}")
    name = params.get("name")
    if name is None:
        return json_schema(conn.bus) if fmt == "jsonschema" else asyncapi(conn.bus)
    name = _name(params)
    if fmt == "asyncapi":
        raise _bad("name", "an AsyncAPI document describes the whole bus: leave out 'name'")
    try:
        return json_schema(conn.bus, name)
    except LookupError as exc:
        raise _bad("name", str(exc)) from None


def cancel(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Cancel a command this connection is running by ``execute``.

    ``{"cancelled": true}`` when it was: its ``execute`` is answered with
    ``-32013``. ``false`` when its handler is sync and has started, which
    nothing can interrupt (``"async"`` says which kind it has).
    """
    _only(params, ("id",))
    if "id" not in params:
        raise _bad("id", "'id' is required: the id of the execute request to cancel")
    target = params["id"]
    if isinstance(target, bool) or not isinstance(target, int | str):
        raise _bad("id", f"'id' must be a request id (a number or a string), not {_json(target)}")
    future = conn.executing(target)
    if future is None:
        raise _bad("id", f"no execute with id {_json(target)} is running on this connection")
    return {"cancelled": future.cancel(), "async": future.is_async}


METHODS: dict[str, Callable[[Session, dict[str, Any], Any], Any]] = {
    "describe": describe,
    "inspect": inspect,
    "execute": execute,
    "fire": fire,
    "who_handles": who_handles,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "traces": traces,
    "wait_idle": wait_idle,
    "schema": schema,
    "cancel": cancel,
}

# Holds, stubs and history (``_intervene``), which build on the helpers above.
from ._intervene import INTERVENE  # noqa: E402

METHODS.update(INTERVENE)
