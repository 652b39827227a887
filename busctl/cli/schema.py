"""``busctl schema``: the bus's typed contract, as JSON Schema or as an AsyncAPI 3.0 document.

    $ busctl schema                                  # JSON Schema of every command and event
    $ busctl schema thermostat.set_mode              # one command (or event) only
    $ busctl schema --format asyncapi -o bus.asyncapi.json
    $ busctl schema --embedded --format asyncapi     # the sample services, no bus needed

The document is the bus's own (the control protocol's ``schema`` method,
``docs/protocol.md``): pydantic's schemas of the handlers' annotations and
the declared event payloads. ``-o`` writes it whole or not at all (a
temporary file beside it, renamed into place).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from bus.control.protocol import ErrorCode

from .._args import check_text
from .._client import Client, RemoteError
from .._exit import ExitStatus
from . import _output
from .options import Failure, attached, bus_option, reports_failures, verbose_option

__all__ = ["schema", "write_atomically"]

FORMATS = ("jsonschema", "asyncapi")


@click.command("schema")
@click.argument("name", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonschema",
    show_default=True,
    help="jsonschema: every command's params and result, every event's payload; "
    "asyncapi: an AsyncAPI 3.0 document of the whole bus.",
)
@click.option(
    "-o",
    "--output",
    # No checks by click: write_atomically says what is wrong in one line.
    type=click.Path(allow_dash=True, path_type=Path),
    help="Write the document here (whole, or not at all) instead of to stdout.",
)
@click.option(
    "--embedded",
    is_flag=True,
    help="Describe the sample services on a bus started in this process (no bus needed).",
)
@bus_option
@verbose_option
@reports_failures
def schema(
    name: str | None,
    fmt: str,
    output: Path | None,
    embedded: bool,
    target: str | None,
    nats: str | None,
    verbose: bool,
) -> None:
    """Print the bus's typed contract: JSON Schema, or an AsyncAPI 3.0 document.

    With NAME, only that command's or event's schema (JSON Schema only).
    The types are the handlers' annotations and the events' declared
    payload types, as the bus checks them at `call` and `emit`.

    \b
      busctl schema | jq '.commands["thermostat.set_mode"]'
      busctl schema --format asyncapi -o bus.asyncapi.json
      busctl schema --embedded --format asyncapi
      busctl schema --nats nats://127.0.0.1:4222 --bus home
    """
    if name is not None:
        name = check_text(name)
        if fmt == "asyncapi":
            raise Failure(
                "an AsyncAPI document describes the whole bus: leave out NAME, "
                "or use --format jsonschema",
                ExitStatus.USAGE,
            )
    if embedded and target is not None:
        raise Failure("--embedded and --bus name two buses: give one", ExitStatus.USAGE)
    if embedded and nats:
        source = click.get_current_context().get_parameter_source("nats")
        if source is not click.core.ParameterSource.ENVIRONMENT:  # $BUS_NATS_URL: not asked here
            raise Failure("--embedded and --nats name two buses: give one", ExitStatus.USAGE)
        nats = None
    with _bus(target, nats, embedded) as client:
        document = fetch_schema(client, fmt, name)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output is None or str(output) == "-":
        _output.print_json(document)
        return
    where = write_atomically(output, text + "\n")
    what = "AsyncAPI 3.0 document" if fmt == "asyncapi" else "JSON Schema"
    commands, events = _counts(document, fmt)
    _output.console(stderr=True).print(
        f"wrote the {what} of bus {client.name} ({commands} commands, {events} events) to {where}",
        markup=False,
        highlight=False,
    )


def fetch_schema(client: Client, fmt: str = "jsonschema", name: str | None = None) -> Any:
    """The bus's ``schema`` document.

    Raises:
        Failure: the bus has no ``schema`` method (an older bus), or nothing
            is called ``name`` (``NOT_FOUND``).
        RemoteError: any other refusal.
    """
    params: dict[str, Any] = {"format": fmt}
    if name is not None:
        params["name"] = name
    try:
        return client.request("schema", params, timeout=30.0)
    except RemoteError as exc:
        if exc.code == ErrorCode.METHOD_NOT_FOUND:
            raise Failure(
                f"bus {client.name} does not export its schema (its bus library is older "
                "than the typed contract)",
                ExitStatus.ERROR,
            ) from exc
        if exc.code == ErrorCode.INVALID_PARAMS and exc.data.get("param") == "name":
            raise Failure(
                f"no command or event named {name!r} on bus {client.name}", ExitStatus.NOT_FOUND
            ) from exc
        raise


@contextlib.contextmanager
def _bus(target: str | None, nats: str | None, embedded: bool) -> Iterator[Client]:
    if not embedded:
        with attached(target, nats) as client:
            yield client
        return
    from .._embedded import embed_sample

    client, bus = embed_sample()
    try:
        yield client
    finally:
        client.close()
        bus.close()


def _counts(document: Any, fmt: str) -> tuple[int, int]:
    if not isinstance(document, dict):
        return 0, 0
    if fmt == "jsonschema":
        return len(document.get("commands") or {}), len(document.get("events") or {})
    operations = document.get("operations") or {}
    commands = sum(1 for key in operations if str(key).startswith("execute."))
    events = sum(1 for key in document.get("channels") or {} if str(key).startswith("event."))
    return commands, events


def write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole, or not at all; return where it went.

    A temporary file in the same directory is renamed over ``path``, so a
    reader never sees half a document and a failed write leaves the old file.

    Raises:
        Failure: the file cannot be written there (``USAGE``, one line saying why).
    """
    path = path.expanduser()
    directory = path.parent
    if path.is_dir():
        raise Failure(f"cannot write {path}: it is a directory", ExitStatus.USAGE)
    if not directory.is_dir():
        raise Failure(
            f"cannot write {path}: no directory {directory}"
            + (" (it is a file)" if directory.exists() else ""),
            ExitStatus.USAGE,
        )
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise Failure(f"cannot write {path}: {exc.strerror or exc}", ExitStatus.USAGE) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise Failure(f"cannot write {path}: {exc.strerror or exc}", ExitStatus.USAGE) from None
    return path


def _umask() -> int:
    # The mode a plain open() would give: mkstemp makes its file 0600.
    mask = os.umask(0)
    os.umask(mask)
    return mask
