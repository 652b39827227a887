"""The floors of ``bus`` hold: each layer imports only the layers below it.

The layering is written in ``bus/__init__.py``; this checks it on the source,
``TYPE_CHECKING`` imports included, so that a cycle between packages cannot
creep in as "only a type hint". It also checks that ``busctl`` reaches the
bus through its public modules only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The floors, lowest first; a module may import from its own floor and below.
FLOORS = ["bus._core", "bus._observe", "bus.control", "bus._nats", "bus"]


def _floor(module: str) -> int:
    for level in range(len(FLOORS) - 1):
        package = FLOORS[level]
        if module == package or module.startswith(package + "."):
            return level
    return len(FLOORS) - 1  # the top: bus/__init__, _bus, testing, the public modules


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` for every import in the file, wherever it is."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or (node.level and not node.module):
                # ``from . import x``: x may be a module of that package
                found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, target))
    return found


def _bus_modules() -> list[Path]:
    return sorted((ROOT / "bus").rglob("*.py"))


@pytest.mark.parametrize("path", _bus_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_bus_module_imports_only_its_floor_and_below(path: Path) -> None:
    module = _module_name(path)
    mine = _floor(module)
    for line, target in _imports(path):
        if target != "bus" and not target.startswith("bus."):
            continue
        if target == "bus" and mine < len(FLOORS) - 1:
            pytest.fail(f"{module}:{line} imports the top of bus")
        assert _floor(target) <= mine, (
            f"{module} (floor {FLOORS[mine]}) imports {target} "
            f"(floor {FLOORS[_floor(target)]}) at line {line}"
        )


def test_the_core_knows_no_sdk_sockets_or_console() -> None:
    forbidden = ("opentelemetry.sdk", "socket", "busctl", "textual", "prompt_toolkit", "rich")
    for path in sorted((ROOT / "bus" / "_core").rglob("*.py")):
        for line, target in _imports(path):
            assert not any(target == f or target.startswith(f + ".") for f in forbidden), (
                f"{_module_name(path)}:{line} imports {target}"
            )


def test_busctl_imports_no_private_bus_module() -> None:
    for path in sorted((ROOT / "busctl").rglob("*.py")):
        source = path.read_text()
        # No shim that reaches a private module by name at run time either.
        assert not re.search(r"import_module\(\s*[\"']bus\._", source), path
        for line, target in _imports(path):
            if target.startswith("bus."):
                private = [part for part in target.split(".")[1:] if part.startswith("_")]
                assert not private, f"{_module_name(path)}:{line} imports private {target}"


def test_only_the_bus_imports_the_transport_and_only_when_asked() -> None:
    """``bus._nats`` (and nats-py) load only for ``Bus(nats=...)``: a lazy import in ``_bus``."""
    for path in _bus_modules():
        module = _module_name(path)
        if module.startswith("bus._nats"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            relative = (
                isinstance(node, ast.ImportFrom) and node.level and "_nats" in (node.module or "")
            )
            if any(n == "nats" or n.startswith(("nats.", "bus._nats")) for n in names) or relative:
                assert module == "bus._bus", f"{module}:{node.lineno} imports the transport"
                under_type_checking = False
                for parent in ast.walk(tree):
                    if isinstance(parent, ast.If) and node in ast.walk(parent):
                        under_type_checking = "TYPE_CHECKING" in ast.unparse(parent.test)
                assert id(node) not in top_level or under_type_checking, (
                    f"{module}:{node.lineno} imports the transport at import time"
                )


# -- the observer seam -----------------------------------------------------------

#: The modules that run the work: mailboxes, threads, dispatch, async tasks.
RUNTIME_MODULES = (
    "_runtime.py",
    "_mailbox.py",
    "_dispatch.py",
    "_tasks.py",
    "_loop.py",
    "_worker.py",
)

#: What the runtime may read off its bus: where to report (the observer seam),
#: the bus's name (thread names, errors) and the counts ``wait_idle`` reads.
RUNTIME_READS_OF_BUS = {"observer", "name", "ledger"}


def _is_bus(node: ast.expr, aliases: set[str]) -> bool:
    """``bus``, ``x.bus`` (``self.bus``, ``runtime.bus``...), or a name bound to one."""
    if isinstance(node, ast.Name):
        return node.id == "bus" or node.id in aliases
    return isinstance(node, ast.Attribute) and node.attr == "bus"


def _reads_of_bus(path: Path) -> list[tuple[int, str]]:
    """``(line, attribute)`` for every attribute the module reads off a bus."""
    tree = ast.parse(path.read_text(), str(path))
    aliases: set[str] = set()
    for node in ast.walk(tree):  # ``b = self.bus`` makes ``b`` a bus too
        if isinstance(node, ast.Assign) and _is_bus(node.value, set()):
            aliases.update(t.id for t in node.targets if isinstance(t, ast.Name))
    reads: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_bus(node.value, aliases):
            reads.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and node.args
            and _is_bus(node.args[0], aliases)
        ):
            name = node.args[1] if len(node.args) > 1 else None
            text = name.value if isinstance(name, ast.Constant) else "<computed>"
            reads.append((node.lineno, str(text)))
    return reads


def test_the_runtime_reaches_its_bus_only_through_the_observer_seam() -> None:
    """The runtime reports through ``bus.observer``, never through the bus's privates."""
    seen: set[str] = set()
    for filename in RUNTIME_MODULES:
        path = ROOT / "bus" / "_core" / filename
        for line, attribute in _reads_of_bus(path):
            where = f"bus/_core/{filename}:{line}"
            assert not attribute.startswith("_"), (
                f"{where} reads the bus's private {attribute!r}: give the runtime a public "
                "seam for it (the Observer protocol, or a public attribute of the core)"
            )
            assert attribute in RUNTIME_READS_OF_BUS, (
                f"{where} reads bus.{attribute}: the runtime uses only "
                f"{sorted(RUNTIME_READS_OF_BUS)}; add it there if it belongs to the seam"
            )
            seen.add(attribute)
    assert "observer" in seen, "the check found no report to the observer: does it still look?"


def _privates_read_off(path: Path, receivers: set[str]) -> list[tuple[int, str]]:
    """``(line, text)`` of every ``x._private`` where ``x`` is one of ``receivers``.

    A receiver is a name (``runtime``) or a dotted attribute path (``self.bus``).
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and ast.unparse(node.value) in receivers
        ):
            found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize(
    ("filename", "receivers"),
    [
        # Starting a service asks the runtime (mark_running), never takes its lock.
        ("_core/_lifecycle.py", {"runtime", "rt", "core._pool"}),
        # A service's timers go through the bus's public schedule().
        ("_core/_service.py", {"self.bus", "bus", "service.bus"}),
        # An event NATS dropped is counted by the runtime (count_dropped).
        ("_nats/_serve.py", {"runtime", "handler.destination"}),
    ],
)
def test_a_module_asks_the_object_that_owns_the_state(filename: str, receivers: set[str]) -> None:
    found = _privates_read_off(ROOT / "bus" / filename, receivers)
    assert not found, f"bus/{filename} reaches another class's privates: {found}"


def test_only_the_untraced_fire_reaches_into_the_router_and_the_mailbox() -> None:
    """``BusCore.fire_event`` inlines ``Runtime.post`` on purpose (its comment says
    why); no other method of the core reads a runtime's or the router's privates."""
    tree = ast.parse((ROOT / "bus" / "_core" / "_bus.py").read_text())
    receivers = {"runtime", "self.router", "self._pool", "handler.destination"}
    outside: list[str] = []
    inside = 0
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and ast.unparse(node.value) in receivers
            ):
                if function.name == "fire_event":
                    inside += 1
                else:
                    outside.append(f"{function.name}:{node.lineno} {ast.unparse(node)}")
    assert not outside, outside
    assert inside, "fire_event no longer inlines the post: drop this test and the comment"


# -- size ----------------------------------------------------------------------------

#: About as long as a module gets before it does several things (STYLE.md); the
#: same bound ``tests/busctl/test_layout.py`` keeps for the console.
MAX_LINES = 500


@pytest.mark.parametrize("path", _bus_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_bus_modules_stay_readable(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{lines} lines: split it by what it does"
