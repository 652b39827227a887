"""The observe floor of ``bus``: spans, the activity stream, the ring, ``inspect()``.

``_hub.Hub`` is the core's ``Observer``: it writes trace records (arguments
encoded once, in ``_jsonval``/``_records``) and activity. The trace thread
(``_sink``) builds spans from records (``_spans``) for the provider
(``_provider``) and the console's ring (``_ring``). ``_inspect`` shapes the
core's state into ``inspect()``; ``_otlp*`` read and write OTLP JSON. It
imports the core, never ``control`` or the top of the package.
"""
