"""The package's structure, read from its source: no import cycles, no private names across modules.

Every ``import`` and ``from … import`` in toolkit/ counts, at module level or inside a function (a lazy import
is still a dependency: it only moves the cost).  See docs/architecture.md for the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "toolkit"


def modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import of a toolkit module in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "toolkit"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "toolkit":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in known:   # `from . import spool` imports a module, not a name
                    out.append((sub, "", node.lineno))
                else:
                    out.append((target, a.name, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for target, _, _ in imports(name, path, known):
            # importing toolkit.x.y also runs toolkit.x/__init__: a dependency on the package too
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges[name].add(target)
    return edges


def test_no_import_cycles():
    edges = graph()
    cycles, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_no_private_names_across_modules():
    known = modules()
    found = []
    for name, path in known.items():
        for target, imported, line in imports(name, path, known):
            owner = target
            if imported.startswith("_") and not imported.startswith("__") and owner != name:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {owner}.{imported}")
    assert found == [], "private names imported across modules:\n" + "\n".join(found)


def test_the_walk_sees_real_imports():
    """The checks above must not pass because they see nothing."""
    edges = graph()
    assert "toolkit.policy" in edges["toolkit.router"] and "toolkit.redact" in edges["toolkit.policy"]
    assert sum(len(v) for v in edges.values()) > 60
