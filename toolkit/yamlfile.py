"""YAML files read strictly and located: every key path mapped to its line, for errors that name the line.

Strict: a size limit and an alias-expansion limit are checked before anything grows (a "billion laughs" file is
refused in milliseconds, not after minutes and gigabytes), and duplicate keys — which YAML would silently
resolve to the last one — are reported with both lines.  Policies, what-if scenarios and drills are read here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from .errors import Problem, YamlError

MAX_EXPANDED_NODES = 100_000      # YAML aliases expanded
# libyaml's parser when PyYAML was built with it: a policy loads ~4x faster (the same nodes, marks and errors).
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlDoc:
    data: Any                                  # the document (None when empty)
    lines: dict[tuple, int]                    # key path -> 1-based line
    duplicates: list[tuple[tuple, int, int]]   # (key path, first line, second line)

    def line_of(self, path: tuple) -> int | None:
        """The line of ``path``, or of its nearest ancestor in the file."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)


def read_yaml(name: str, raw: bytes, *, max_bytes: int, what: str = "this file") -> YamlDoc:
    """Parse ``raw`` (the bytes of file ``name``) strictly; raise :class:`YamlError` naming the line."""
    if len(raw) > max_bytes:
        raise YamlError(Problem(name, None, "", f"{len(raw):,} bytes is more than {what} may hold "
                                                f"({max_bytes} bytes); is this the right file?"))
    loader = LOADER(raw.decode("utf-8", errors="replace"))
    try:
        root = loader.get_single_node()
        if root is None:
            return YamlDoc(None, {}, [])
        size = expanded_size(root, {})
        if size > MAX_EXPANDED_NODES:
            raise YamlError(Problem(name, None, "", f"YAML aliases would expand to {size:,} nodes (at most "
                                                    f"{MAX_EXPANDED_NODES:,}): refused before expanding them"))
        duplicates: list = []
        lines = line_index(root, duplicates=duplicates)
        return YamlDoc(loader.construct_document(root), lines, duplicates)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise YamlError(Problem(name, line, "", f"not valid YAML: {getattr(e, 'problem', e)}")) from None
    finally:
        loader.dispose()


def expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document would have with every alias expanded (aliases share nodes, so this is cheap)."""
    size = memo.get(id(node))
    if size is None:
        memo[id(node)] = 1  # a recursive alias counts once instead of looping
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        size = 1 + sum(expanded_size(c, memo) for c in children)
        memo[id(node)] = size
    return size


def line_index(node: yaml.Node, path: tuple = (), out: dict | None = None,
                duplicates: list | None = None) -> dict[tuple, int]:
    """Map every key path in the YAML document to its 1-based line number; note duplicate keys as
    (path, first line, second line) in ``duplicates``."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            sub = (*path, key.value)
            line = key.start_mark.line + 1
            if key.value in seen and key.value != "<<" and duplicates is not None:
                duplicates.append((sub, seen[key.value], line))
            seen.setdefault(key.value, line)
            out.setdefault(sub, line)
            line_index(value, sub, out, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            line_index(value, (*path, i), out, duplicates)
    return out
