"""busctl's settings file: what a person wants every time, without typing it.

    $ cat ~/.config/busctl/config.toml
    safe = true          # repl and tui ask before a command not declared read-only

``$XDG_CONFIG_HOME/busctl/config.toml`` (else ``~/.config/busctl/config.toml``),
TOML. A setting given on the command line (``--safe``, ``--no-safe``) wins.
A file that cannot be read, or a setting of the wrong type, is named in one
warning and left out: a console never refuses to start over its settings.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["config_path", "load", "setting"]

_KNOWN: dict[str, type] = {"safe": bool}


def config_path() -> Path:
    """Where the settings file is looked for."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "busctl" / "config.toml"


def load(path: Path | None = None, *, warn: Any = None) -> dict[str, Any]:
    """The settings in the file (``{}`` if there is none); problems are warned about once."""
    path = path or config_path()
    say = warn or (lambda text: print(f"warning: {text}", file=sys.stderr))
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        say(f"{path}: not read ({exc})")
        return {}
    settings: dict[str, Any] = {}
    for key, value in data.items():
        kind = _KNOWN.get(key)
        if kind is None:
            say(f"{path}: unknown setting {key!r} (known: {', '.join(_KNOWN)})")
        elif not isinstance(value, kind):
            say(f"{path}: {key} must be a {kind.__name__}, not {value!r}")
        else:
            settings[key] = value
    return settings


def setting(name: str, given: Any, default: Any, path: Path | None = None) -> Any:
    """``given`` (the command line's) unless ``None``, else the file's, else ``default``."""
    if given is not None:
        return given
    return load(path).get(name, default)
