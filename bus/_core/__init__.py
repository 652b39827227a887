"""The core floor of ``bus``: the four verbs, routing, mailboxes, services.

It knows no sockets and no OpenTelemetry SDK (only the API's context, so that
a handler's span context crosses threads). ``BusCore`` (``_bus``) is the
engine; ``_router`` answers where work goes, ``_runtime`` and ``_dispatch``
run it on service threads, ``_observer`` is the one seam through which the
floors above watch it. Nothing here imports ``_observe``, ``control`` or the
top of the package.
"""
