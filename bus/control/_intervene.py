"""The methods by which a console steps into a bus: holds, stubs and history.

``hold``, ``held``, ``release``, ``drop``, ``unhold`` work on the bus's holds
(``Bus.holds``), ``stub``, ``unstub``, ``stubs`` on its live stubs
(``Bus.stubs``), ``history`` reads its span ring; ``docs/protocol.md`` has
their params and results. Each takes the session, its params and the
request id, as the methods of ``_methods`` do, which lists them in
``METHODS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._contract import InvalidArgumentError
from .._core._errors import CommandNotFoundError
from .._core._holds import DEFAULT_SECONDS, MAX_SECONDS, NoSuchHoldError, check_seconds
from .._core._patterns import validate_name, validate_pattern
from .._core._stubs import NoSuchStubError, exception_from
from .._observe._jsonval import json_ready
from ._history import KINDS, history_entries
from .protocol import ErrorCode

if TYPE_CHECKING:
    from types import ModuleType

    from ._methods import RpcError, Session

__all__ = ["INTERVENE", "held_json"]


def _rpc() -> ModuleType:
    # ``_methods`` imports this module when it is complete, to list these methods
    # in ``METHODS``: its helpers are reached through it when a method runs.
    from . import _methods

    return _methods


def _bad(name: str, message: str) -> RpcError:
    error: RpcError = _rpc().RpcError(
        ErrorCode.INVALID_PARAMS, f"invalid params: {message}", {"param": name}
    )
    return error


def _seconds(params: dict[str, Any]) -> float:
    value = params.get("for")
    if value is None:
        return DEFAULT_SECONDS
    try:
        return check_seconds(value, "'for'")
    except (TypeError, ValueError):
        raise _bad(
            "for", f"'for' must be a number of seconds, more than 0 and at most {MAX_SECONDS:g}"
        ) from None


def _id(params: dict[str, Any], key: str = "id") -> int:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(key, f"{key!r} must be a positive integer, not {_rpc()._json(value)}")
    return value


def _one_of(params: dict[str, Any], first: str, second: str) -> str:
    """Which of two exclusive params is given (exactly one must be)."""
    given = [key for key in (first, second) if params.get(key) not in (None, False)]
    if len(given) != 1:
        raise _bad(first, f"give {first!r} or {second!r} (one of them)")
    return given[0]


def _refused(exc: Exception) -> Exception:
    """A library refusal as the error to send."""
    rpc = _rpc()
    error: Exception = exc
    if isinstance(exc, NoSuchHoldError):
        error = rpc.RpcError(ErrorCode.NO_SUCH_HOLD, str(exc), {"type": type(exc).__name__})
    elif isinstance(exc, NoSuchStubError):
        error = rpc.RpcError(ErrorCode.NO_SUCH_STUB, str(exc), {"type": type(exc).__name__})
    elif isinstance(exc, InvalidArgumentError):
        error = rpc.invalid_argument(exc)
    return error


# -- holds ------------------------------------------------------------------------------


def hold(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Hold calls and deliveries matching a pattern; the hold, described."""
    rpc = _rpc()
    rpc._only(params, ("pattern", "kind", "service", "for"))
    pattern = params.get("pattern")
    try:
        pattern = validate_pattern(pattern)
    except (TypeError, ValueError) as exc:
        raise _bad("pattern", f"'pattern': {exc}") from None
    kind = params.get("kind")
    if kind not in (None, "call", "event"):
        raise _bad("kind", f'\'kind\' must be "call", "event" or null, not {rpc._json(kind)}')
    service = params.get("service")
    if service is not None and (not isinstance(service, str) or not service):
        raise _bad("service", "'service' must be a service name or null")
    seconds = _seconds(params)
    try:
        found = conn.bus.holds.add(pattern, kind=kind, service=service, seconds=seconds)
    except ValueError as exc:
        raise _bad("service", str(exc)) from None
    return found.describe(0)


def held(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """The holds and what they hold."""
    _rpc()._only(params, ())
    bus = conn.bus
    return {
        "holds": bus.holds.holds(),
        "held": [held_json(item.describe(), bus.redact) for item in bus.holds.held()],
    }


def held_json(item: dict[str, Any], redact: Any) -> dict[str, Any]:
    """A held item's description with its arguments as JSON values (marked ``lossy``)."""
    args, lossy = json_ready(list(item["args"]), redact)
    kwargs, lossy_kw = json_ready(dict(item["kwargs"]), redact)
    out = {**item, "args": args, "kwargs": kwargs}
    if lossy or lossy_kw:
        out["lossy"] = True
    return out


def release(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Let a held item go (edited or not), or all of them."""
    rpc = _rpc()
    rpc._only(params, ("id", "all", "args", "kwargs", "set"))
    holds = conn.bus.holds
    if _one_of(params, "id", "all") == "all":
        if any(params.get(key) is not None for key in ("args", "kwargs", "set")):
            raise _bad("all", "edit one item at a time: give 'id', not 'all', with an edit")
        return {"released": holds.release_all()}
    item_id = _id(params)
    args = params.get("args")
    if args is not None and not isinstance(args, list):
        raise _bad("args", f"'args' must be an array, not {rpc._json_type(args)}")
    kwargs = params.get("kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise _bad("kwargs", f"'kwargs' must be an object, not {rpc._json_type(kwargs)}")
    changes = params.get("set")
    if changes is not None and not isinstance(changes, dict):
        raise _bad("set", f"'set' must be an object, not {rpc._json_type(changes)}")
    try:
        holds.release(item_id, args=args, kwargs=kwargs, set=changes)
    except (NoSuchHoldError, InvalidArgumentError) as exc:
        raise _refused(exc) from None
    except TypeError as exc:
        data = {"type": "TypeError", "message": str(exc)}
        raise rpc.RpcError(ErrorCode.BAD_ARGUMENTS, str(exc), data) from None
    return {"released": [item_id]}


def drop(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Drop a held item, or all of them."""
    _rpc()._only(params, ("id", "all"))
    holds = conn.bus.holds
    if _one_of(params, "id", "all") == "all":
        return {"dropped": holds.drop_all()}
    item_id = _id(params)
    try:
        holds.drop(item_id)
    except NoSuchHoldError as exc:
        raise _refused(exc) from None
    return {"dropped": [item_id]}


def unhold(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """End a hold (by id) or the holds on a pattern; what they held goes on."""
    rpc = _rpc()
    rpc._only(params, ("id", "pattern"))
    which: int | str
    if _one_of(params, "id", "pattern") == "id":
        which = _id(params)
    else:
        which = params["pattern"]
        if not isinstance(which, str):
            raise _bad("pattern", f"'pattern' must be a string, not {rpc._json_type(which)}")
    try:
        ended, released = conn.bus.holds.remove(which)
    except NoSuchHoldError as exc:
        raise _refused(exc) from None
    return {"holds": [h.describe(0) for h in ended], "released": released}


# -- stubs ------------------------------------------------------------------------------


def stub(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Stand in for a command of this bus: return a value, or raise."""
    rpc = _rpc()
    rpc._only(params, ("name", "returns", "raises", "for", "times"))
    name = rpc._name(params)
    try:
        validate_name(name, "command name")
    except ValueError as exc:
        raise _bad("name", str(exc)) from None
    raises = params.get("raises")
    options: dict[str, Any] = {"seconds": _seconds(params)}
    if raises is not None:
        if "returns" in params:
            raise _bad("raises", "give 'returns' or 'raises', not both")
        try:
            exception_from(raises)
        except ValueError as exc:
            raise _bad("raises", str(exc)) from None
        options["raises"] = raises
    else:
        options["returns"] = params.get("returns")
    times = params.get("times")
    if times is not None:
        options["times"] = rpc._positive_int(params, "times", 1, 1_000_000_000)
    try:
        made = conn.bus.stubs.add(name, **options)
    except CommandNotFoundError as exc:
        raise rpc.error_reply(exc) from None
    return made.describe()


def unstub(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Put a stubbed command's real handler back."""
    rpc = _rpc()
    rpc._only(params, ("name",))
    name = rpc._name(params)
    try:
        removed = conn.bus.stubs.remove(name)
    except NoSuchStubError as exc:
        raise _refused(exc) from None
    return removed.describe()


def stubs(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """The stubs in place."""
    _rpc()._only(params, ())
    return {"stubs": [s.describe() for s in conn.bus.stubs.stubs()]}


# -- history ----------------------------------------------------------------------------


def history(conn: Session, params: dict[str, Any], rid: Any) -> Any:
    """Recent calls, events (and deliveries) from the span ring, newest last."""
    rpc = _rpc()
    rpc._only(params, ("patterns", "limit", "kinds"))
    patterns = params.get("patterns")
    if patterns is None:
        patterns = ["*"]
    if not isinstance(patterns, list) or not patterns:
        raise _bad("patterns", "'patterns' must be a non-empty array of name patterns")
    for pattern in patterns:
        try:
            validate_pattern(pattern)
        except (TypeError, ValueError) as exc:
            raise _bad("patterns", str(exc)) from None
    kinds = params.get("kinds")
    if kinds is None:
        kinds = ["call", "event"]
    if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
        raise _bad("kinds", f"'kinds' must be a non-empty array of {', '.join(KINDS)}")
    bus = conn.bus
    limit = rpc._positive_int(params, "limit", 50, max(1, bus.spans.capacity))
    bus.flush_traces(timeout=1.0)  # what already ran is in the ring
    return {"entries": history_entries(bus.spans, tuple(patterns), tuple(kinds), limit)}


INTERVENE: dict[str, Callable[[Session, dict[str, Any], Any], Any]] = {
    "hold": hold,
    "held": held,
    "release": release,
    "drop": drop,
    "unhold": unhold,
    "stub": stub,
    "unstub": unstub,
    "stubs": stubs,
    "history": history,
}
