"""The bus's typed contract as JSON Schema and as an AsyncAPI 3.0 document.

    from bus import Bus
    from bus.schema import asyncapi, json_schema

    with Bus(name="home") as bus:
        ...                              # add services
        document = json_schema(bus)      # {"commands": {...}, "events": {...}, "$defs": {...}}
        spec = asyncapi(bus)             # {"asyncapi": "3.0.0", "channels": ..., "operations": ...}

Both are made by pydantic from the handlers' annotations and the events'
declared payload types (``Bus.declare_event``); ``docs/bus.md`` ("Types")
says how. The console gets the same documents from the control protocol's
``schema`` method.
"""

from __future__ import annotations

from ._core._contract import InvalidArgumentError, event_type
from ._observe._schema import FORMATS, asyncapi, json_schema

__all__ = ["FORMATS", "InvalidArgumentError", "asyncapi", "event_type", "json_schema"]
