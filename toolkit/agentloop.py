"""A short agent loop over a Router: ask, run the tools the model calls, hand their results back, until it answers.

Every turn is one routed request on the same intent and ``conversation_id``, so the route's rules apply per turn
(capabilities, fallbacks, a ``sticky: conversation`` pin) and each turn's record names who made the earlier tool
calls (toolkit/conversations.py).  The loop appends the model's own assistant message (``Result.message``) and
one ``tool`` message per call; a tool that raises, or a call to a function not given, is answered with the error
text, as agents do, so the model can recover.

    >>> run = run_agent(router, "agent", "Was INV-2231 charged twice?", [LOOKUP_INVOICE],
    ...                 {"lookup_invoice": lookup_invoice})
    >>> run.answer, [r.served_model for r in run.results]
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .result import Result


@dataclass
class AgentRun:
    conversation_id: str
    messages: list[dict]
    results: list[Result] = field(default_factory=list)
    finished: bool = False          # the model answered without calling a tool (else max_turns was reached)

    @property
    def answer(self) -> str | None:
        return self.results[-1].text if self.finished else None


def run_agent(router: Any, intent: str, messages: str | list[dict], tools: Sequence[dict],
              functions: Mapping[str, Callable[..., Any]], *, max_turns: int = 6, conversation_id: str | None = None,
              between: Callable[[int, Result], None] | None = None, **chat: Any) -> AgentRun:
    """Run the loop; ``between(turn, result)`` is called after each turn that called tools (before the next one)."""
    history = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
    run = AgentRun(conversation_id or uuid.uuid4().hex, history)
    for turn in range(max_turns):
        result = router.complete(intent, run.messages, conversation_id=run.conversation_id, tools=list(tools), **chat)
        run.results.append(result)
        run.messages.append(result.message)
        if not result.tool_calls:
            run.finished = True
            break
        for call in result.tool_calls:
            run.messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": _run_tool(functions.get(call.name), call.name, call.arguments)})
        if between is not None:
            between(turn, result)
    return run


def _run_tool(fn: Callable[..., Any] | None, name: str, arguments: str) -> str:
    if fn is None:
        return f"error: there is no tool {name!r}"
    try:
        out = fn(**json.loads(arguments))
    except Exception as e:  # noqa: BLE001 — the model reads the error and may recover
        return f"error: {type(e).__name__}: {e}"
    return out if isinstance(out, str) else json.dumps(out)
