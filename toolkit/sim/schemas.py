"""JSON values for a JSON schema: the simulator's structured answers and tool-call arguments.

:func:`example_of` builds a value valid for the schemas agents send (objects, arrays, strings with ``enum``,
``const``, formats and lengths, numbers with bounds, ``anyOf`` / ``oneOf`` / ``allOf``, local ``$ref`` to
``$defs`` / ``definitions``; Gemini's upper-case type names too).  :func:`violation_of` builds one that is not
(the ``bad_json`` fault): its required properties left out, or a wrong type.
"""
from __future__ import annotations

from typing import Any

_FORMATS = {"date": "2026-11-02", "date-time": "2026-11-02T10:00:00Z", "email": "someone@example.com",
            "uri": "https://example.com/", "uuid": "00000000-0000-4000-8000-000000000000", "time": "10:00:00"}


def example_of(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A value valid for ``schema`` (best effort for the keywords above; anything else is left unconstrained)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "$ref" in schema:
        return example_of(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example_of(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if isinstance(part, dict) and "$ref" in part else part
            if isinstance(part, dict):
                merged = {**merged, **part, "properties": {**merged.get("properties", {}),
                                                           **part.get("properties", {})},
                          "required": [*merged.get("required", []), *part.get("required", [])]}
        return example_of(merged, root, depth + 1)
    kind = _type(schema)
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: example_of(sub, root, depth + 1) for name, sub in props.items()}
    if kind == "array":
        n = max(1, int(schema.get("minItems") or 0))
        return [example_of(schema.get("items") or {}, root, depth + 1) for _ in range(n)]
    if kind == "string":
        text = _FORMATS.get(schema.get("format"), "example")
        low, high = int(schema.get("minLength") or 0), schema.get("maxLength")
        text = text + "x" * max(0, low - len(text))
        return text[:high] if isinstance(high, int) else text
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(1, low + (1 if "exclusiveMinimum" in schema else 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if high is not None and value > high:
            value = low
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"


def violation_of(schema: Any) -> dict:
    """An object that does not validate against ``schema`` (an object schema, as tools and answers use)."""
    schema = schema if isinstance(schema, dict) else {}
    if schema.get("required"):
        return {}
    props = schema.get("properties") or {}
    for name, sub in props.items():
        wrong = 12345 if _type(sub) != "integer" and _type(sub) != "number" else "not a number"
        return {name: wrong}
    return {"unexpected": ["a value no schema asked for"]} if schema.get("additionalProperties") is False else []


def _type(schema: dict) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if isinstance(kind, str):
        return kind.lower()   # Gemini writes OBJECT, STRING...
    if "properties" in schema:
        return "object"
    return None


def _resolve(ref: str, root: Any) -> Any:
    node = root
    for part in ref.lstrip("#/").split("/") if ref.startswith("#") else ():
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node
