"""Bounded, redacted JSON of arguments and results, for spans and the console.

Plain JSON values (atoms, lists, tuples, dicts with string keys) are encoded
as they are, on a path kept as fast as it can be. Typed values (dataclasses,
pydantic models, enums, datetimes, UUIDs, decimals, paths, sets...) take a
slower path only when one is met: pydantic's JSON mode turns them into the
JSON they stand for (``Point(x=1, y=2)`` becomes ``{"x": 1, "y": 2}``,
``Mode.HEAT`` becomes ``"heat"``), which is then redacted and bounded as any
other. pydantic_core is imported the first time such a value is met.

Values that JSON cannot hold are replaced by ``{"$repr": ..., "$type": ...}``,
and values that cannot even be described (an ``int`` beyond CPython's
digit limit, an object whose ``__repr__`` raises) by
``{"$unencodable": "ValueError: ...", "$type": ...}``; either way the text is
marked *lossy*. Text longer than the limit is cut and marked *truncated*. The
redaction hook sees every keyword argument and every dict entry, and may
replace the value; a hook that raises never breaks the call it describes, the
value is masked instead. Nothing here raises on any value: these functions run
on service threads, where an exception would end the service.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

__all__ = [
    "ATOMIC_TYPES",
    "Encoded",
    "Redactor",
    "atom_json",
    "atoms_json",
    "encode",
    "encode_call",
    "json_ready",
    "redact_secrets",
]

Redactor = Callable[[str, Any], Any]
"""``redact(key, value) -> value``: called for keyword arguments and dict entries."""

ATOMIC_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None)})
"""Immutable types whose encoding may safely be deferred off the hot path."""

_SECRET_WORDS = frozenset(
    {
        "pass", "password", "passwd", "passphrase", "pwd", "secret", "token",
        "apikey", "authorization", "authorisation", "credential", "credentials",
    }
)  # fmt: skip
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_verdicts: dict[str, bool] = {}  # key -> secret?; bounded below
MASK = "***"
_REPR_LIMIT = 200
_INFINITIES = (float("inf"), float("-inf"))
_SHORT_INT = 1 << 64  # an int whose decimal text is never refused (sys.set_int_max_str_digits)
_SHORT_MIN = -_SHORT_INT  # once: negating a big int makes a new one each time
# Below this many bits an int has fewer decimal digits than CPython's default
# int-to-str limit (4300), so it converts without the check below.
_SAFE_INT_BITS = 14_000


def unencodable(exc: BaseException, kind: type | None = None) -> dict[str, str]:
    """The placeholder for a value that could not be encoded or described."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # str() of a hostile exception may raise too
        text = type(exc).__name__
    if len(text) > _REPR_LIMIT:
        text = text[:_REPR_LIMIT] + "..."
    placeholder = {"$unencodable": text}
    if kind is not None:
        placeholder["$type"] = kind.__qualname__
    return placeholder


def redact_secrets(key: str, value: Any) -> Any:
    """The default redaction hook: masks values whose key names a secret.

    The key is split into words (``db_password``, ``dbPassword``,
    ``X-Api-Key``); it is a secret when a word is ``password``, ``passwd``,
    ``pass``, ``pwd``, ``passphrase``, ``secret``, ``token``,
    ``authorization``, ``credential(s)``, or two words make ``api key``.
    ``passenger`` or ``compass`` are not secrets.
    """
    secret = _verdicts.get(key)
    if secret is None:
        words = [w.lower() for w in _WORDS.findall(key)]
        secret = any(w in _SECRET_WORDS for w in words) or any(
            a == "api" and b == "key" for a, b in itertools.pairwise(words)
        )
        if len(_verdicts) < 4096:
            _verdicts[key] = secret
    return MASK if secret else value


class _Marker(dict[str, str]):
    """A ``$repr``/``$unencodable`` placeholder made inside a typed value.

    Its own type, so that cleaning the typed value's JSON passes it through
    as it is (not to the redaction hook), at no cost on the plain path.
    """

    __slots__ = ()


_to_jsonable: Callable[..., Any] | None = None


def _jsonable(value: Any, fallback: Callable[[Any], Any]) -> Any:
    """pydantic's JSON mode of ``value``; what it does not know goes to ``fallback``."""
    global _to_jsonable
    convert = _to_jsonable
    if convert is None:
        from pydantic_core import to_jsonable_python

        convert = _to_jsonable = to_jsonable_python
    # NaN and infinities stay floats, to be marked lossy as anywhere else.
    return convert(value, fallback=fallback, inf_nan_mode="constants")


class Encoded(NamedTuple):
    """JSON text with what was lost on the way."""

    text: str
    truncated: bool
    lossy: bool


class _Encoder:
    __slots__ = ("lossy", "redact")

    def __init__(self, redact: Redactor | None) -> None:
        self.redact = redact
        self.lossy = False

    def clean(self, value: Any, depth: int = 0) -> Any:
        kind = type(value)
        if kind in ATOMIC_TYPES:
            if kind is float and (value != value or value in _INFINITIES):
                self.lossy = True
                return {"$repr": repr(value), "$type": "float"}
            if kind is int and value.bit_length() > _SAFE_INT_BITS:
                try:
                    int.__repr__(value)
                except ValueError as exc:  # beyond sys.get_int_max_str_digits()
                    self.lossy = True
                    return unencodable(exc, int)
            return value
        if depth > 32:
            self.lossy = True
            return {"$repr": "...", "$type": kind.__qualname__}
        if kind is list or kind is tuple:
            return [self.clean(v, depth + 1) for v in value]
        if kind is dict:
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    k = self.key(k)
                out[k] = self.clean(self.apply(k, v), depth + 1)
            return out
        if kind is _Marker:
            return value
        typed = self.typed(value)
        if typed is not _UNTYPED:
            return self.clean(typed, depth + 1)
        return self.described(value)

    def typed(self, value: Any) -> Any:
        """``value`` as pydantic's JSON mode has it, or ``_UNTYPED``."""
        if isinstance(value, Iterator):  # encoding would consume it (a generator, a file)
            return _UNTYPED
        try:
            return _jsonable(value, self.described)
        except Exception:  # invalid UTF-8 bytes, a cycle, a hostile property...
            return _UNTYPED

    def described(self, value: Any) -> _Marker:
        """The ``$repr`` placeholder of a value JSON cannot hold (lossy)."""
        self.lossy = True
        kind = type(value)
        try:
            text = repr(value)
            if type(text) is not str:
                raise TypeError(f"__repr__ returned {type(text).__name__}")
        except Exception as exc:  # a broken __repr__ must not break the call
            return _Marker(unencodable(exc, kind))
        if len(text) > _REPR_LIMIT:
            text = text[:_REPR_LIMIT] + "..."
        return _Marker({"$repr": text, "$type": kind.__qualname__})

    def key(self, key: Any) -> str:
        """A non-string dict key as text: JSON for atoms and typed keys, else its repr (lossy)."""
        if type(key) not in ATOMIC_TYPES:
            typed = self.typed(key)  # an enum, a UUID, a date...
            if type(typed) in ATOMIC_TYPES:
                key = typed
        if type(key) is str:
            return key
        if type(key) in ATOMIC_TYPES:
            try:
                return json.dumps(key)
            except ValueError:  # an int beyond the digit limit
                pass
        self.lossy = True
        try:
            text = repr(key)
            if type(text) is str:
                return text[:_REPR_LIMIT]
        except Exception:
            pass
        return f"<unencodable {type(key).__qualname__} key>"

    def apply(self, key: str, value: Any) -> Any:
        if self.redact is None:
            return value
        try:
            return self.redact(key, value)
        except (Exception, SystemExit):  # a hook never breaks the call it describes
            return MASK


_UNTYPED: Any = object()

_encode_str = json.encoder.encode_basestring
_encode_ascii = json.encoder.encode_basestring_ascii


def _str_json(text: str) -> str:
    """JSON of a string; lone surrogates, which UTF-8 cannot carry, are escaped."""
    if text.isascii():
        return _encode_str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(text)
    return _encode_str(text)


def _int_json(value: int) -> str | None:
    try:
        return int.__repr__(value)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return None


def atoms_json(values: list[Any] | tuple[Any, ...]) -> str | None:
    """JSON of a sequence of atoms, several times faster than ``json.dumps``.

    ``None`` if some value is not an atom that JSON holds exactly.
    """
    parts = []
    for v in values:
        kind = type(v)
        if kind is int and _SHORT_MIN < v < _SHORT_INT:  # the commonest
            parts.append(str(v))  # an exact int's repr, by CPython's quickest call
        elif kind is str:
            parts.append(_str_json(v))
        elif kind is int:
            text = _int_json(v)
            if text is None:
                return None
            parts.append(text)
        elif kind is bool:
            parts.append("true" if v else "false")
        elif v is None:
            parts.append("null")
        elif kind is float and v == v and v not in _INFINITIES:
            parts.append(float.__repr__(v))
        else:
            return None
    return "[" + ",".join(parts) + "]"


def atom_json(value: Any) -> str | None:
    """JSON of one atom (``str``, ``int``, finite ``float``, ``bool``, ``None``)."""
    kind = type(value)
    if kind is str:
        return _str_json(value)
    if kind is int:
        return _int_json(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is float and value == value and value not in _INFINITIES:
        return float.__repr__(value)
    return None


def encode(value: Any, limit: int, redact: Redactor | None = None) -> Encoded:
    """Encode ``value`` as JSON text of at most ``limit`` characters.

    Never raises: whatever ``value`` holds, the result describes it, and the
    text is always valid UTF-8 (lone surrogates are escaped).
    """
    if type(value) is list or type(value) is tuple:
        text = atoms_json(value)
        if text is not None:
            if len(text) > limit:
                return Encoded(text[:limit], True, False)
            return Encoded(text, False, False)
    lossy = True
    try:
        clean, lossy = json_ready(value, redact)
        text = _dumps(clean)
    except Exception as exc:  # a last guard: json_ready handles what we know of
        text = _dumps(unencodable(exc, type(value)))
    if len(text) > limit:
        return Encoded(text[:limit], True, lossy)
    return Encoded(text, False, lossy)


def json_ready(value: Any, redact: Redactor | None = None) -> tuple[Any, bool]:
    """``value`` as plain JSON data, and whether anything was lost on the way.

    What JSON cannot hold is replaced by the markers described above. Never
    raises.
    """
    encoder = _Encoder(redact)
    try:
        return encoder.clean(value), encoder.lossy
    except Exception as exc:  # e.g. a dict changed size while it was read
        return unencodable(exc, type(value)), True


def _dumps(clean: Any) -> str:
    text = json.dumps(clean, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate somewhere: escape them all
            text = json.dumps(clean, separators=(",", ":"))
    return text


def encode_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], limit: int, redact: Redactor | None
) -> tuple[Encoded, Encoded | None]:
    """Encode positional and keyword arguments (keywords pass through ``redact``)."""
    return encode(list(args), limit, redact), (encode(kwargs, limit, redact) if kwargs else None)
