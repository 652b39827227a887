"""Types of the C span makers (``_speedups_otlp*.c``, ``_speedups_sdk.c``).

See ``_otlp_lines`` (trace-file text) and ``_spans`` (SDK spans).
"""

from collections.abc import Callable
from typing import Any

class Encoder:
    """Writes the OTLP JSON text of common flat records; hands the rest to ``fallback``."""

    def __init__(
        self,
        limit: int,
        flags: int,
        kinds: tuple[int, int, int, int],
        value_json: Callable[[Any], tuple[str, bool, bool]],
        fallback: Callable[[Any, list[Any], Callable[[Any, Exception], None]], bool],
        encoded: type,
        prefix: bytes = ...,
    ) -> None: ...
    def build(self, record: Any, out: list[Any], /) -> bool: ...
    def build_many(
        self, records: list[Any], out: list[Any], failed: Callable[[Any, Exception], None], /
    ) -> list[Any]: ...
    def write_many(
        self, records: list[Any], failed: Callable[[Any, Exception], None], /
    ) -> tuple[list[Any], bytes, int]: ...

def span_total(records: list[Any], /) -> int: ...

class SdkSpans:
    """Makes the SDK ``ReadableSpan``s of common flat records (``_spans.SpanBuilder``)."""

    def __init__(
        self,
        owner: Any,
        limit: int,
        value_json: Callable[[Any], tuple[str, bool, bool]],
        fallback: Callable[[Any, list[Any], Callable[[Any, Exception], None]], bool],
        encoded: type,
        producers: dict[int, Any],
        span_type: type,
        context_type: type,
        sampled: Any,
        no_state: Any,
        kinds: tuple[Any, Any, Any, Any],
        scope: Any,
        resource: Any,
        status: Any,
        names: tuple[str, ...],
    ) -> None: ...
    def build(self, record: Any, out: list[Any], /) -> bool: ...
    def build_many(
        self, records: list[Any], out: list[Any], failed: Callable[[Any, Exception], None], /
    ) -> list[Any]: ...
