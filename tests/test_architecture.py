"""The package's structure, read from its source: no import cycles, no private names across modules.

Every ``import`` and ``from … import`` in toolkit/ counts, at module level or inside a function (a lazy import
is still a dependency: it only moves the cost).  See docs/architecture.md for the layers.
"""
from __future__ import annotations

import ast
import re
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


def layers() -> dict[str, int]:
    """Module (or package) -> layer, from the diagram in docs/architecture.md: a line starting with a digit opens
    a layer; the names (comma-separated) come before the description, which is three spaces or a dash away."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    block = doc.split("```\n", 1)[1].split("```", 1)[0]
    out, layer = {}, None
    for line in block.splitlines():
        text = line.strip()
        if not text or text.startswith("─"):
            continue
        if text[0].isdigit():
            layer, text = int(text[0]), text[1:].strip()
        elif len(line) - len(line.lstrip()) > 10:
            continue   # the description's own continuation line
        names = re.split(r"\s{3,}|—", text)[0]
        for name in names.replace(",", " ").split():
            out[name.rstrip("*").rstrip("/")] = layer
    return out


def layer_of(module: str, table: dict[str, int]) -> int | None:
    parts = module.removeprefix("toolkit.").split(".")
    return table.get(parts[0]) if parts[0] != "toolkit" else None


def test_every_module_has_a_layer_and_imports_only_downward():
    table = layers()
    assert table["router"] == 3 and table["errors"] == 0 and table["commands"] == 6
    edges = graph()
    unplaced = sorted(m for m in edges if m != "toolkit" and layer_of(m, table) is None)
    assert unplaced == [], f"modules missing from docs/architecture.md: {unplaced}"
    upward = [f"{m} (layer {layer_of(m, table)}) imports {t} (layer {layer_of(t, table)})"
              for m, targets in edges.items() if m != "toolkit" for t in targets
              if t != "toolkit" and layer_of(t, table) > layer_of(m, table)]
    assert upward == [], "imports that reach up a layer:\n" + "\n".join(sorted(upward))
