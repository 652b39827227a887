"""Types of the C encoder of trace-file lines (``_speedups_otlp*.c``); see ``_otlp_lines``."""

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
