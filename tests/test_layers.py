"""Each module imports only from its own floor and the floors above (docs/architecture.md).

Imports are read from the source (module level, outside ``if TYPE_CHECKING:``): a lazy
import inside a function is how a lower floor reaches a higher one on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsresearch

PACKAGE = Path(wsresearch.__file__).parent

FLOORS = [
    ("base", {"clock", "errors", "redaction", "dedupe", "notebook", "_callbacks", "_files",
              "_limits", "_ports", "_staging", "_catalog", "_text", "_spill", "_levels",
              "_sweep", "_warn", "_allocator", "_collector", "_rows", "_wall_clock", "_http"}),
    ("settings and rules", {"config", "backoff", "policy", "sequence"}),
    ("parts", {"events", "parser", "health", "frames", "queue", "normalize", "exactness",
               "book", "layout"}),
    ("description", {"spec", "exchanges"}),
    ("core", {"pipeline", "_columnar"}),
    ("I/O", {"_client", "connection", "recording", "snapshots", "_replay_rest"}),
    ("composition", {"feed", "replay"}),
    ("tools", {"quality", "export", "widgets", "console", "importers", "_split",
               "_session_times", "book_times", "_coverage", "grid", "outages"}),
    ("rigs", {"testing"}),
    ("command line", {"cli"}),  # its demo and simulate commands run the rigs
]
NAMESPACES = {"", "lowlevel"}  # the package itself and lowlevel re-export every floor
FLOOR_OF = {name: level for level, (_, names) in enumerate(FLOORS) for name in names}


def top(module: str) -> str:
    """``recording.format`` -> ``recording``: a package is on its floor as a whole."""
    return module.split(".", 1)[0]


def module_level_imports(path: Path, package: str) -> set[str]:
    """The package's own modules ``path`` imports at module level, outside TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".") if package else []
            base = parts[:len(parts) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
    return found


def modules() -> list[tuple[str, Path, str]]:
    """Every module: its dotted name inside the package, its file, its package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        package_parts = parts[:-1] if path.name != "__init__.py" else parts
        name = ".".join(p for p in parts if p != "__init__")
        found.append((name, path, ".".join(package_parts)))
    return found


def test_every_module_has_a_floor() -> None:
    missing = sorted({top(name) for name, _, _ in modules()} - set(FLOOR_OF) - NAMESPACES)
    assert missing == [], f"add these to FLOORS and to docs/architecture.md: {missing}"


@pytest.mark.parametrize(("name", "path", "package"), modules(), ids=lambda v: str(v))
def test_a_module_imports_only_from_its_floor_and_above(name: str, path: Path,
                                                        package: str) -> None:
    if top(name) in NAMESPACES:
        return
    floor = FLOOR_OF[top(name)]
    for target in module_level_imports(path, package):
        if top(target) in NAMESPACES or top(target) == top(name):
            continue
        assert FLOOR_OF[top(target)] <= floor, (
            f"{name} ({FLOORS[floor][0]}) imports {target} ({FLOORS[FLOOR_OF[top(target)]][0]})")
