"""What travels between processes: calls, replies, errors, signatures, trace context.

Bodies are JSON objects:

- a call: ``{"args": [...], "kwargs": {...}}`` (both optional);
- a reply: ``{"result": value}`` or ``{"error": {...}}`` (see ``error_body``);
- an event: ``{"args": [...], "kwargs": {...}}``.

Arguments, results and payloads are written with ``encode_typed``: plain
JSON as it is, typed values (dataclasses, pydantic models, enums, datetimes,
UUIDs, decimals, paths, sets...) as pydantic's JSON mode has them, the same
JSON the console and the spans show. The receiving process converts them
back to its handlers' annotations (``_serve``). What has no JSON form is
refused by ``unsendable``, which names the argument.

A remote signature arrives as text. It is never evaluated (the text came
from the network): its annotations become ``RemoteAnnotation``s, which print
as written and which the caller's contract accepts any value for; the
handler's own process converts and checks.

Headers carry what is not the payload: the W3C trace context (written and
read by OpenTelemetry's propagator, only for sampled work), the chain of
waits a call belongs to (``Bus-Chain``), the groups a firer served itself
(``Bus-Served``), and NATS micro's error headers on a failed reply.
"""

from __future__ import annotations

import builtins
import inspect
import json
import sys
import traceback
import typing
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._core._contract import InvalidArgumentError, Problem
from .._core._errors import RemoteError, error_message
from .._core._hints import adapter_for, namespace_of, resolve
from .._observe._jsonval import json_ready

__all__ = [
    "CHAIN",
    "ORIGIN",
    "SERVED",
    "STATUS",
    "RemoteAnnotation",
    "RemoteStub",
    "decode",
    "encode",
    "encode_typed",
    "error_body",
    "extract",
    "inject",
    "rebuild_error",
    "rebuild_signature",
    "result_class",
    "unsendable",
]

#: Header: the waits a call belongs to, for finding cycles across processes.
CHAIN = "Bus-Chain"
#: Header: the listener groups the firing process delivered to itself.
SERVED = "Bus-Served"
#: Header: who sent the message (``service@process`` or ``process``).
ORIGIN = "Bus-Origin"
#: Header: why a request was not served here (``missing``: try another instance).
STATUS = "Bus-Status"

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=True)
_decoder = json.JSONDecoder()
_PROPAGATOR = TraceContextTextMapPropagator()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def encode(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8.

    Raises:
        TypeError, ValueError: it is not JSON (an object, a cycle).
    """
    return _encoder.encode(value).encode()


_to_jsonable: Callable[..., Any] | None = None


def _json_form(value: Any) -> Any:
    """pydantic's JSON mode of a value the plain encoder does not know.

    Raises:
        ValueError: it has no JSON form (pydantic's ``PydanticSerializationError``).
    """
    global _to_jsonable
    convert = _to_jsonable
    if convert is None:  # pydantic_core is imported when a typed value is first met
        from pydantic_core import to_jsonable_python

        convert = _to_jsonable = to_jsonable_python
    # NaN and infinities stay floats, as the plain encoder writes them.
    return convert(value, inf_nan_mode="constants")


_typed_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=True, default=_json_form
)


def encode_typed(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8, typed values in pydantic's JSON mode.

    Plain JSON values take the plain encoder's path, at its cost; only a
    value it does not know is handed to pydantic (``Point(1, 2)`` becomes
    ``{"x": 1, "y": 2}``, ``Mode.HEAT`` becomes ``"heat"``).

    Raises:
        TypeError, ValueError: some part has no JSON form (a lock, a cycle).
    """
    try:
        return _typed_encoder.encode(value).encode()
    except TypeError:
        # A dict key JSON cannot hold as it is (an enum, a date): pydantic
        # writes keys as it writes values.
        return _encoder.encode(_json_form(value)).encode()


def unsendable(
    what: str, args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any], signature: Any
) -> str:
    """Why the arguments of ``what`` cannot travel: which one has no JSON form.

    ``signature`` (an ``inspect.Signature`` or ``None``) names positional
    arguments; without it they are numbered from 1.
    """
    names: list[str] = []
    star: str | None = None
    if isinstance(signature, inspect.Signature):
        for p in signature.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind is p.VAR_POSITIONAL:
                star = p.name
    given = [
        (names[i] if i < len(names) else f"{star}[{i - len(names)}]" if star else f"#{i + 1}", v)
        for i, v in enumerate(args)
    ]
    given.extend(kwargs.items())
    for name, value in given:
        try:
            encode_typed(value)
        except (TypeError, ValueError, RecursionError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return (
                f"{what}: argument {name!r} ({_kind(value)}) has no JSON form, so it cannot "
                f"reach another process: {reason}"
            )
    return f"{what}: the arguments have no JSON form, so they cannot reach another process"


def _kind(value: Any) -> str:
    name = type(value).__qualname__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def decode(data: bytes) -> Any:
    """The JSON value in ``data``.

    Raises:
        ValueError: it is not JSON in UTF-8.
    """
    return _decoder.decode(data.decode())


# -- trace context --------------------------------------------------------------


def inject(headers: dict[str, str], trace_id: int, span_id: int) -> None:
    """Write the W3C ``traceparent`` of a sampled span into ``headers``."""
    span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED))
    _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))


def extract(headers: Mapping[str, str] | None) -> otel_context.Context | None:
    """The trace context a message carries, or ``None`` if it carries none."""
    if not headers or "traceparent" not in headers:
        return None
    ctx = _PROPAGATOR.extract(headers)
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


# -- errors -----------------------------------------------------------------------


def error_body(error: BaseException, origin: str) -> dict[str, Any]:
    """What the caller needs to raise ``error`` again: type, message, traceback.

    ``args`` (what the type's constructor takes, from ``__reduce__``) is
    sent when it is JSON, so that the caller can rebuild the same exception.
    """
    cls = type(error)
    body: dict[str, Any] = {
        "type": cls.__qualname__,
        "module": cls.__module__,
        "message": error_message(error),
        "traceback": "".join(traceback.format_exception(error)),
        "origin": origin,
    }
    if isinstance(error, InvalidArgumentError):
        # Its problems (dataclasses) travel as objects, rebuilt by ``rebuild_error``.
        problems = [
            {
                "param": p.param,
                "path": p.path,
                "expected": p.expected,
                "value": json_ready(p.value)[0],
                "message": p.message,
            }
            for p in error.problems
        ]
        body["args"] = [error.target, problems, error.signature]
        return body
    try:
        reduced = error.__reduce__()
        args = reduced[1] if isinstance(reduced, tuple) and len(reduced) > 1 else None
        if isinstance(args, tuple) and not (len(reduced) > 2 and reduced[2]):
            encode(list(args))
            body["args"] = list(args)
    except Exception:
        pass
    return body


def _find_class(module: str, qualname: str) -> type | None:
    """The class named, from a module this process has imported already.

    Never imports: a name that came over the network must not make this
    process run a module's code.
    """
    owner: Any = builtins if module == "builtins" else sys.modules.get(module)
    if owner is None:
        return None
    for part in qualname.split("."):
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner if isinstance(owner, type) else None


def _find_type(module: str, qualname: str) -> type[Exception] | None:
    """The exception type named, from a module this process has imported already."""
    owner = _find_class(module, qualname)
    if owner is not None and issubclass(owner, Exception):
        return owner
    return None


def rebuild_error(body: Any) -> BaseException:
    """The exception a remote handler raised, as this process can best raise it.

    Builtin types and types of modules already imported here come back as
    themselves; anything else, or one whose constructor refuses the
    arguments, as ``RemoteError``. The remote traceback is attached as a note
    and as ``remote_traceback``.
    """
    if not isinstance(body, dict):
        body = {}
    qualname = str(body.get("type") or "Exception")
    module = str(body.get("module") or "builtins")
    message = str(body.get("message") or "")
    remote_tb = str(body.get("traceback") or "")
    origin = str(body.get("origin") or "another process")
    error: BaseException | None = None
    cls = _find_type(module, qualname)
    if cls is not None:
        args = body.get("args")
        try:
            if isinstance(args, list) and issubclass(cls, InvalidArgumentError):
                target, problems, signature = args
                args = [str(target), [Problem(**p) for p in problems], str(signature)]
            error = cls(*args) if isinstance(args, list) else cls(message)
        except Exception:
            error = None
        if error is not None and str(error) != message and not isinstance(args, list):
            error = None  # it would not say what the remote one said
    if error is None:
        name = qualname if module == "builtins" else f"{module}.{qualname}"
        error = RemoteError(name, message, remote_tb)
    error.remote_traceback = remote_tb  # type: ignore[attr-defined]
    if remote_tb:
        error.add_note(f"Remote traceback, in {origin}:\n{remote_tb.rstrip()}")
    return error


# -- signatures -------------------------------------------------------------------

_KINDS = {
    "positional": inspect.Parameter.POSITIONAL_ONLY,
    "positional_or_keyword": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "var_positional": inspect.Parameter.VAR_POSITIONAL,
    "keyword_only": inspect.Parameter.KEYWORD_ONLY,
    "var_keyword": inspect.Parameter.VAR_KEYWORD,
}


class _Text(str):
    """Source text that prints as written (an annotation, a default's repr)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class RemoteAnnotation:
    """An annotation of another process's handler: its text, never evaluated.

    It prints as written (``Point``, ``list[int] | None``), so signatures
    read as the handler's own. Evaluating it would run text that came from
    the network; so a contract here accepts any value for it (pydantic asks
    ``__get_pydantic_core_schema__``), and the handler's process, which has
    the real types, converts and checks.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteAnnotation) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.any_schema()


def rebuild_signature(params: Any, returns: Any) -> inspect.Signature | None:
    """The signature another process announced (``Param.to_json`` entries).

    ``None`` when the announcement does not describe a valid signature, so
    the arguments are not checked here (the handler's process checks them).
    Annotations are ``RemoteAnnotation``s: text, never evaluated.
    """
    if not isinstance(params, list):
        return None
    try:
        built = []
        for p in params:
            kind = _KINDS[p["kind"]]
            default = p.get("default")
            annotation = p.get("annotation")
            built.append(
                inspect.Parameter(
                    str(p["name"]),
                    kind,
                    default=inspect.Parameter.empty if default is None else _Text(default),
                    annotation=(
                        inspect.Parameter.empty
                        if annotation is None
                        else RemoteAnnotation(str(annotation))
                    ),
                )
            )
        result = inspect.Signature.empty if returns is None else RemoteAnnotation(str(returns))
        return inspect.Signature(built, return_annotation=result)
    except (KeyError, TypeError, ValueError):
        return None


def result_class(fn: Any, signature: inspect.Signature | None) -> dict[str, str] | None:
    """The class a local handler's result is annotated with, for its announcement.

    ``{"module", "qualname"}`` when the return annotation is one class a
    caller could find by name (a dataclass, a model, an enum, a datetime...),
    else ``None``: no annotation, a builtin, a generic or a union, a class
    defined inside a function.
    """
    if signature is None or signature.return_annotation is inspect.Signature.empty:
        return None
    hint, _ = resolve(signature.return_annotation, namespace_of(fn))
    if not isinstance(hint, type) or hint.__module__ == "builtins":
        return None
    if "<locals>" in hint.__qualname__ or typing.get_args(hint):
        return None
    return {"module": hint.__module__, "qualname": hint.__qualname__}


_UNUSABLE: Any = object()


class RemoteStub:
    """The ``fn`` of a handler in another process: its signature, name and doc.

    A ``Binder`` checks arguments against the signature, ``inspect()`` shows
    the name; it is never called (the router posts to the remote peer).

    Attributes:
        result_class: ``(module, qualname)`` of the class its results are
            annotated with, when its process announced one (``result_class``).
    """

    def __init__(
        self,
        qualname: str,
        signature: inspect.Signature | None,
        doc: str | None,
        result_class: tuple[str, str] | None = None,
    ) -> None:
        self.__qualname__ = qualname
        self.__signature__ = signature
        self.__doc__ = doc
        self.result_class = result_class
        self._adapter: Any = None

    def typed(self, value: Any) -> Any:
        """A result (JSON) as the class it is annotated with, when this process has it.

        Found by name among the modules imported here, never imported, never
        evaluated; converted by pydantic. The JSON value as it came when the
        class is not here, or the value does not convert to it.
        """
        if self.result_class is None or value is None:
            return value
        adapter = self._adapter
        if adapter is None:
            cls = _find_class(*self.result_class)
            if cls is None:
                return value  # maybe imported later: looked for again then
            try:
                adapter = adapter_for(cls)
            except Exception:
                adapter = _UNUSABLE
            self._adapter = adapter
        if adapter is _UNUSABLE:
            return value
        try:
            return adapter.validate_python(value)
        except Exception:  # another class of that name: the JSON is what we know
            return value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self.__qualname__} runs in another process")
