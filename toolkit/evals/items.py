"""One prompt of a prompt set (:class:`PromptItem`), as :func:`toolkit.evals.prompts.load_prompts` reads it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class PromptItem:
    id: str
    intent: str
    messages: tuple[dict, ...]
    expected: Any = None
    check: dict = field(default_factory=dict)     # {"type": scorer name, ...options}
    sensitivity: str | None = None
    local_only: bool = False
    max_tokens: int | None = None
    source: str = ""                               # "file:line"

    @property
    def scorer(self) -> str:
        return self.check["type"]

    @property
    def question(self) -> str:
        """The last user message (what a judge is shown)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return str(m.get("content") or "")
        return ""


def undeclared_labels(items: Iterable[PromptItem], policy: Any) -> list[str]:
    """``file:line: why`` for each sensitivity label ``policy`` does not declare, at the first prompt carrying it:
    the Router would refuse those prompts, so a run checks before it calls (and pays for) any."""
    found: dict[str, str] = {}
    for item in items:
        problem = policy.undeclared(item.sensitivity)
        if problem and item.sensitivity not in found:
            found[item.sensitivity] = f"{item.source}: {problem}"
    return list(found.values())
