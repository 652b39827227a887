"""Bounded, redacted JSON of arguments and results, for spans and the console.

Values that JSON cannot hold are replaced by ``{"$repr": ..., "$type": ...}``
and the text is marked *lossy*; text longer than the limit is cut and marked
*truncated*. The redaction hook sees every keyword argument and every dict
entry, and may replace the value; a hook that raises never breaks the call it
describes, the value is masked instead.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "ATOMIC_TYPES",
    "Encoded",
    "Redactor",
    "atom_json",
    "atoms_json",
    "encode",
    "encode_call",
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
                    if type(k) not in ATOMIC_TYPES:
                        self.lossy = True
                    k = json.dumps(k) if type(k) in ATOMIC_TYPES else repr(k)
                out[k] = self.clean(self.apply(k, v), depth + 1)
            return out
        self.lossy = True
        try:
            text = repr(value)
        except Exception as exc:  # a broken __repr__ must not break the call
            text = f"<unrepresentable: {type(exc).__name__}>"
        if len(text) > _REPR_LIMIT:
            text = text[:_REPR_LIMIT] + "..."
        return {"$repr": text, "$type": kind.__qualname__}

    def apply(self, key: str, value: Any) -> Any:
        if self.redact is None:
            return value
        try:
            return self.redact(key, value)
        except Exception:
            return MASK


_encode_str = json.encoder.encode_basestring


def atoms_json(values: list[Any] | tuple[Any, ...]) -> str | None:
    """JSON of a sequence of atoms, several times faster than ``json.dumps``.

    ``None`` if some value is not an atom that JSON holds exactly.
    """
    parts = []
    for v in values:
        kind = type(v)
        if kind is str:
            parts.append(_encode_str(v))
        elif kind is int:
            parts.append(int.__repr__(v))
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
        return _encode_str(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is float and value == value and value not in _INFINITIES:
        return float.__repr__(value)
    return None


def encode(value: Any, limit: int, redact: Redactor | None = None) -> Encoded:
    """Encode ``value`` as JSON text of at most ``limit`` characters.

    Never raises: whatever ``value`` holds, the result describes it.
    """
    if type(value) is list or type(value) is tuple:
        text = atoms_json(value)
        if text is not None:
            if len(text) > limit:
                return Encoded(text[:limit], True, False)
            return Encoded(text, False, False)
    encoder = _Encoder(redact)
    text = json.dumps(encoder.clean(value), ensure_ascii=False, separators=(",", ":"))
    if len(text) > limit:
        return Encoded(text[:limit], True, encoder.lossy)
    return Encoded(text, False, encoder.lossy)


def encode_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], limit: int, redact: Redactor | None
) -> tuple[Encoded, Encoded | None]:
    """Encode positional and keyword arguments (keywords pass through ``redact``)."""
    return encode(list(args), limit, redact), (encode(kwargs, limit, redact) if kwargs else None)
