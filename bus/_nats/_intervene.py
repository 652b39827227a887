"""Holds, stubs and history for a bus across processes (the control protocol over NATS).

A hold or a stub acts where the work runs: in the process that owns the
command, or hosts the listener. So ``bus.NAME.control`` (the bus as a whole)
sends these methods on to the processes themselves, each answering on its
own control subject as its socket would, and merges what they say:

- ``hold`` sets the hold in every process (each its own, with its own id);
  ``stub`` and ``unstub`` go to every process, and the ones that serve the
  command answer (a process without it says "no such command", which is
  ignored while another one answered);
- ``held``, ``stubs`` and ``history`` gather every process's answer;
- ``release``, ``drop`` and ``unhold`` go to the process an id names: ids
  are ``N@PROCESS`` here (``3@host:4242``), where a process's socket says
  ``3``. A bare ``3`` is looked for in every process, and is refused when
  more than one has it.

Every item gets ``process``, the label of the process it came from.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..control import _methods as rpc
from ..control import protocol
from ..control.protocol import ErrorCode

if TYPE_CHECKING:
    from ._control import ControlResponder, Session

__all__ = ["WHOLE"]

#: Seconds a process has to answer its part.
ASK_TIMEOUT = 3.0

Reply = dict[str, Any]  # a JSON-RPC reply: "result" or "error"


def _line(message: dict[str, Any]) -> bytes:
    return protocol.dumps(message).rstrip(b"\n")


async def _ask(
    responder: ControlResponder, session: Session, process_id: str, method: str, params: Any
) -> Reply:
    """One process's reply (this one's straight from its methods)."""
    link = responder.link
    if process_id == link.process_id:
        from ._control import _in_thread

        try:
            result = await _in_thread(link, lambda: rpc.METHODS[method](session, params, 1))
        except Exception as exc:
            return {"error": rpc.error_reply(exc).to_json()}
        return {"result": result}
    subject = link.subjects.of_process(process_id, "control")
    try:
        msg = await link.loop.nc.request(
            subject, _line(protocol.request(1, method, params)), timeout=ASK_TIMEOUT
        )
        reply = json.loads(msg.data)
    except Exception as exc:
        return {"error": {"code": ErrorCode.INTERNAL_ERROR, "message": f"no answer: {exc}"}}
    return reply if isinstance(reply, dict) else {"error": {"code": ErrorCode.INTERNAL_ERROR}}


def _processes(responder: ControlResponder) -> list[tuple[str, str]]:
    """``(id, label)`` of every process, this one first."""
    link = responder.link
    return [(link.process_id, link.label)] + [(p.id, p.label) for p in link.registry.snapshot()]


async def _everywhere(
    responder: ControlResponder, session: Session, method: str, params: Any
) -> list[tuple[str, Reply]]:
    """``(label, reply)`` of every process, asked at once."""
    processes = _processes(responder)
    replies = await asyncio.gather(
        *(_ask(responder, session, pid, method, params) for pid, _ in processes)
    )
    return [(label, reply) for (_, label), reply in zip(processes, replies, strict=True)]


def _global(item: dict[str, Any], label: str, key: str = "id") -> dict[str, Any]:
    out = {**item, "process": label}
    if isinstance(item.get(key), int):
        out[key] = f"{item[key]}@{label}"
    return out


def _fail(replies: list[tuple[str, Reply]], prefer: int | None = None) -> rpc.RpcError:
    """The error to send when no process did it: the first (of code ``prefer``) given."""
    errors = [reply["error"] for _, reply in replies if isinstance(reply.get("error"), dict)]
    chosen = next((e for e in errors if e.get("code") == prefer), errors[0] if errors else None)
    if chosen is None:
        return rpc.RpcError(ErrorCode.INTERNAL_ERROR, "no process answered")
    return rpc.RpcError(
        int(chosen.get("code", ErrorCode.INTERNAL_ERROR)),
        str(chosen.get("message", "")),
        chosen.get("data"),
    )


def _split_id(value: Any) -> tuple[int, str | None]:
    """``3`` or ``"3@host:42"``: the number and the process label (``None``: any)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, None
    if isinstance(value, str):
        number, at, label = value.partition("@")
        if number.isdigit() and int(number) > 0 and (label or not at):
            return int(number), label or None
    raise rpc.RpcError(
        ErrorCode.INVALID_PARAMS,
        f"invalid params: 'id' must be N or \"N@PROCESS\" (as `held` lists it), not {value!r}",
        {"param": "id"},
    )


async def _by_id(
    responder: ControlResponder, session: Session, method: str, params: dict[str, Any]
) -> Any:
    """``release``, ``drop`` or ``unhold`` of one id: where that id is."""
    number, label = _split_id(params.get("id"))
    local = {**params, "id": number}
    if label is not None:
        for pid, known in _processes(responder):
            if known == label:
                reply = await _ask(responder, session, pid, method, local)
                return _one(reply, label)
        raise rpc.RpcError(
            ErrorCode.NO_SUCH_HOLD, f"no process {label!r} on bus {responder.link.bus.name!r}"
        )
    replies = await _everywhere(responder, session, method, local)
    done = [(label, reply) for label, reply in replies if "result" in reply]
    if len(done) == 1:
        return _one(done[0][1], done[0][0])
    if not done:
        # The process that has the item says why it refused (an edit that
        # does not convert, say); the others only that they do not have it.
        refusals = [
            (label, r)
            for label, r in replies
            if r.get("error", {}).get("code") != ErrorCode.NO_SUCH_HOLD
        ]
        raise _fail(refusals or replies)
    # Several processes did it: only possible for ids that were not unique.
    raise rpc.RpcError(
        ErrorCode.NO_SUCH_HOLD,
        f"id {number} names an item in several processes: give N@PROCESS "
        f"({', '.join(f'{number}@{label}' for label, _ in done)})",
    )


def _one(reply: Reply, label: str) -> Any:
    if "result" not in reply:
        raise _fail([(label, reply)])
    result = reply["result"]
    if not isinstance(result, dict):
        return result
    out = dict(result)
    for key in ("released", "dropped"):
        if isinstance(out.get(key), list):
            out[key] = [f"{n}@{label}" for n in out[key]]
    if isinstance(out.get("holds"), list):
        out["holds"] = [_global(h, label) for h in out["holds"]]
    return out


# -- the methods --------------------------------------------------------------------


async def hold(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    replies = await _everywhere(responder, session, "hold", params)
    holds = [_global(r["result"], label) for label, r in replies if "result" in r]
    if not holds:
        raise _fail(replies)
    return {**holds[0], "holds": holds}


async def held(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    replies = await _everywhere(responder, session, "held", params)
    if not any("result" in r for _, r in replies):
        raise _fail(replies)
    holds: list[Any] = []
    items: list[Any] = []
    for label, reply in replies:
        result = reply.get("result") or {}
        holds.extend(_global(h, label) for h in result.get("holds", ()))
        items.extend(_global(_global(i, label), label, "hold") for i in result.get("held", ()))
    items.sort(key=lambda i: i.get("since") or 0)
    return {"holds": holds, "held": items}


async def release(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    return await _each_or_one(responder, session, "release", params, "released")


async def drop(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    return await _each_or_one(responder, session, "drop", params, "dropped")


async def _each_or_one(
    responder: ControlResponder, session: Session, method: str, params: Any, key: str
) -> Any:
    if isinstance(params, dict) and params.get("all") and params.get("id") is None:
        replies = await _everywhere(responder, session, method, params)
        if not any("result" in r for _, r in replies):
            raise _fail(replies)
        ids = [
            f"{n}@{label}"
            for label, reply in replies
            for n in (reply.get("result") or {}).get(key, ())
        ]
        return {key: ids}
    return await _by_id(responder, session, method, params)


async def unhold(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    if isinstance(params, dict) and params.get("id") is not None:
        return await _by_id(responder, session, "unhold", params)
    replies = await _everywhere(responder, session, "unhold", params)
    done = [(label, r) for label, r in replies if "result" in r]
    if not done:
        raise _fail(replies, ErrorCode.NO_SUCH_HOLD)
    holds: list[Any] = []
    released: list[Any] = []
    for label, reply in done:
        one = _one(reply, label)
        holds.extend(one.get("holds", ()))
        released.extend(one.get("released", ()))
    return {"holds": holds, "released": released}


async def stub(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    return await _where_served(responder, session, "stub", params)


async def unstub(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    return await _where_served(responder, session, "unstub", params)


async def _where_served(
    responder: ControlResponder, session: Session, method: str, params: Any
) -> Any:
    replies = await _everywhere(responder, session, method, params)
    done = [{**r["result"], "process": label} for label, r in replies if "result" in r]
    if not done:
        # A process that does not serve the command says so; say what the others said.
        others = [
            (label, r)
            for label, r in replies
            if r.get("error", {}).get("code")
            not in (ErrorCode.NO_SUCH_COMMAND, ErrorCode.NO_SUCH_STUB)
        ]
        raise _fail(others or replies)
    return {**done[0], "stubs": done}


async def stubs(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    replies = await _everywhere(responder, session, "stubs", params)
    if not any("result" in r for _, r in replies):
        raise _fail(replies)
    found = [
        {**s, "process": label}
        for label, reply in replies
        for s in (reply.get("result") or {}).get("stubs", ())
    ]
    return {"stubs": sorted(found, key=lambda s: (s.get("name"), s["process"]))}


async def history(responder: ControlResponder, session: Session, params: Any, rid: Any) -> Any:
    replies = await _everywhere(responder, session, "history", params)
    if not any("result" in r for _, r in replies):
        raise _fail(replies)
    entries = [
        {**e, "process": label}
        for label, reply in replies
        for e in (reply.get("result") or {}).get("entries", ())
    ]
    entries.sort(key=lambda e: e.get("time") or 0)
    limit = params.get("limit") if isinstance(params, dict) else None
    return {"entries": entries[-(limit if isinstance(limit, int) and limit > 0 else 50) :]}


Method = Callable[["ControlResponder", "Session", Any, Any], Awaitable[Any]]

WHOLE: dict[str, Method] = {
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
"""The methods the bus as a whole answers by asking its processes."""
