"""Dependencies point one way (DESIGN.md §2): domain imports nothing of ours; db and
gateways are siblings under actions, and neither imports the other or anything above.

Read from the source (every import statement, those inside functions included), so a
lazy import cannot slip a dependency past the rule.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = frozenset({"actions", "api", "blocks", "cli", "compositions", "db", "domain", "flows", "gateways", "runtime"})

# package -> the packages of ours it must not import
FORBIDDEN = {
    "domain": OURS - {"domain"},
    "db": frozenset({"actions", "api", "cli", "compositions", "flows", "gateways", "runtime"}),
    "gateways": frozenset({"actions", "api", "cli", "compositions", "db", "flows", "runtime"}),
}


def imported_packages(path: Path, source: str | None = None) -> set[str]:
    """The top-level package of every module ``path`` (or ``source``, as if it were at
    ``path``) imports, relative imports resolved."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = set()
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.add(base[0] if base else (node.module or "").split(".")[0])
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_or_beside_it(package):
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_rule_sees_every_kind_of_import():
    """Top-level, lazy and relative imports are all found."""
    source = "import db.engine\nfrom domain import money\n\ndef f():\n    from actions import refunds\n\nfrom . import contract\n"
    assert imported_packages(ROOT / "gateways" / "x.py", source) == {"db", "domain", "actions", "gateways"}
