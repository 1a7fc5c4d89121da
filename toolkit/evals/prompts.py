"""Prompt sets: read JSON Lines files into :class:`PromptItem` values, naming every bad line (format in the
package docstring)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import PromptSetError
from .items import PromptItem
from .scorers import check_problem




_ITEM_KEYS = {"id", "intent", "messages", "prompt", "expected", "check", "sensitivity", "local_only", "max_tokens",
              "meta"}


def load_prompts(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[PromptItem]:
    """Read one or more prompt-set files; raise :class:`PromptSetError` naming every bad line."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    items: list[PromptItem] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            problems.append(f"{path}: cannot read prompt set: {e.strerror}")
            continue
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                item = _parse_item(json.loads(line), where)
            except json.JSONDecodeError as e:
                problems.append(f"{where}: not valid JSON ({e.msg} at column {e.colno})")
                continue
            except ValueError as e:
                problems.append(f"{where}: {e}")
                continue
            if item.id in seen:
                problems.append(f"{where}: id: duplicate id {item.id!r} (first at {seen[item.id]})")
                continue
            seen[item.id] = where
            items.append(item)
    if problems:
        raise PromptSetError(problems)
    return items


def _parse_item(obj: Any, where: str) -> PromptItem:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    unknown = sorted(set(obj) - _ITEM_KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: {', '.join(sorted(_ITEM_KEYS))})")
    for key in ("id", "intent"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise ValueError(f"{key}: required, a non-empty string")
    if ("messages" in obj) == ("prompt" in obj):
        raise ValueError("messages: give exactly one of 'messages' (a list) or 'prompt' (a string)")
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise ValueError("prompt: must be a non-empty string")
        messages = ({"role": "user", "content": obj["prompt"]},)
    else:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in msgs):
            raise ValueError('messages: must be a non-empty list of {"role": str, "content": str}')
        messages = tuple(msgs)
    expected = obj.get("expected")
    check = obj.get("check")
    if check is None:
        if isinstance(expected, bool) or expected is None:
            raise ValueError("check: needed when 'expected' is missing or not text/number")
        check = {"type": "numeric" if isinstance(expected, (int, float)) else "normalized"}
    elif isinstance(check, str):
        check = {"type": check}
    elif not isinstance(check, dict) or not isinstance(check.get("type"), str):
        raise ValueError('check: a scorer name or {"type": NAME, ...options}')
    problem = check_problem(check, expected)
    if problem:
        raise ValueError(f"check: {problem}")
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
        raise ValueError("max_tokens: must be a positive integer")
    return PromptItem(id=obj["id"], intent=obj["intent"], messages=messages, expected=expected, check=check,
                      sensitivity=obj.get("sensitivity"), local_only=bool(obj.get("local_only", False)),
                      max_tokens=max_tokens, source=where)


def reference_answers(items: Iterable[PromptItem]) -> dict[str, str]:
    """Question -> an answer its check accepts, for every item whose ``expected`` is a literal answer
    (exact, normalized, contains, numeric): the simulator's answer key (``SimState.answers``), so simulated
    models with a ``skill`` score what it says on a real prompt set."""
    key = {}
    for item in items:
        if item.scorer in ("exact", "normalized", "contains", "numeric") and item.expected is not None:
            key[item.question] = f"#### {item.expected}" if item.scorer == "numeric" else str(item.expected)
    return key
