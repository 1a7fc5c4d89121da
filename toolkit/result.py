"""What a routed call asked and what it got: the request, each attempt and skipped candidate, the result.

:class:`Attempt` and :class:`Skip` are also the elements of a route record's ``attempts`` and ``skipped`` lists:
their fields *are* the record's (toolkit/routelog/schema.py derives ATTEMPT_FIELDS and SKIP_FIELDS from them).
A :class:`Result` is read from the record the Router wrote for it (:meth:`Result.from_record`), so the two never
disagree — but for what a record never keeps (the answer's text and tool-call arguments, unless the route stores
prompts), which the Router hands over beside it.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .chat import NO_OPTIONS, ChatOptions, ToolCall, assistant_message

ABANDONED = "abandoned"   # attempt outcome: the caller stopped reading a stream
WARNING_SEPARATOR = " | "   # between the warnings in a record's `warnings` field


@dataclass
class Request:
    """One routed call, as the caller asked for it."""

    intent: str
    messages: list[dict]
    team: str = "default"
    sensitivity: str | None = None
    max_tokens: int | None = None
    stream: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.time)
    learned: Any = None  # a trained router's Choice (toolkit/research/learned.py), when the route has one
    options: ChatOptions = NO_OPTIONS   # tools, response_format, sampling parameters (toolkit/chat.py)
    conversation_id: str | None = None  # the caller's conversation (a route's `sticky: conversation` keys on it)


@dataclass(frozen=True)
class Attempt:
    """One request sent to one candidate (a provider's model or a tool)."""

    alias: str
    model: str
    provider: str
    region: str | None
    outcome: str                  # "ok", "verify_failed", "stream_cut", "abandoned" or an error kind
    error_class: str | None
    status: int | None
    retryable: bool | None
    retry_after_s: float | None
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    unpriced: bool
    message: str | None           # scrubbed of secrets


@dataclass(frozen=True)
class Skip:
    """A candidate not tried, and why (a reason code: see toolkit/routelog/schema.py)."""

    alias: str
    reason: str
    detail: str


def as_dict(obj: Attempt | Skip) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


@dataclass(frozen=True)
class Result:
    request_id: str
    intent: str
    text: str
    served_model: str             # the policy alias that answered
    response_model: str           # what the provider said it served
    provider: str
    tier: int
    fallback_used: bool
    degraded: bool
    verification: str
    attempts: tuple[Attempt, ...]
    skipped: tuple[Skip, ...]
    cost_usd: float | None
    unpriced: bool
    latency_ms: float
    price_version: str
    policy_version: str
    restarted: bool = False       # streamed: the answer started over after a stream cut (route opted in)
    model_mismatch: bool = False  # the provider said it served another model than the one asked for
    warnings: tuple[str, ...] = ()  # what went wrong around the answer (see toolkit/router.py)
    tool_calls: tuple[ToolCall, ...] = ()   # what the model asked to call (normalized: id, name, JSON arguments)
    finish_reason: str | None = None        # stop, length, tool_calls, ... (OpenAI's names)
    record: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # the audit record as written

    @property
    def message(self) -> dict[str, Any]:
        """The assistant turn to append to the conversation (with its tool calls)."""
        return assistant_message(self.text, self.tool_calls)

    @classmethod
    def from_record(cls, record: dict[str, Any], text: str, attempts: tuple[Attempt, ...],
                    skipped: tuple[Skip, ...], tool_calls: tuple[ToolCall, ...] = ()) -> "Result":
        return cls(
            request_id=record["request_id"], intent=record["intent"], text=text,
            served_model=record["served_alias"], response_model=record["gen_ai.response.model"],
            provider=record["gen_ai.provider.name"], tier=record["served_tier"],
            fallback_used=record["fallback_used"], degraded=record["degraded"], verification=record["verification"],
            attempts=attempts, skipped=skipped, cost_usd=record["cost_usd"], unpriced=record["unpriced"],
            latency_ms=record["latency_ms"], price_version=record["price_version"],
            policy_version=record["policy_version"], restarted=any(a.outcome == "stream_cut" for a in attempts),
            model_mismatch=record["model_mismatch"],
            warnings=tuple(record["warnings"].split(WARNING_SEPARATOR)) if record["warnings"] else (),
            tool_calls=tool_calls, finish_reason=record["finish_reason"], record=record)

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "record"}
        d["attempts"] = [as_dict(a) for a in self.attempts]
        d["skipped"] = [as_dict(s) for s in self.skipped]
        d["warnings"] = list(self.warnings)
        d["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return d

    def explain(self) -> str:
        lines = [f"intent {self.intent!r} -> {self.served_model} ({self.response_model} via {self.provider}, tier {self.tier})"
                 + ("  [DEGRADED: below the route's quality floor]" if self.degraded else "")
                 + ("  [fallback]" if self.fallback_used else "")
                 + ("  [RESTARTED after a stream cut]" if self.restarted else "")
                 + ("  [MODEL MISMATCH: the provider served another model]" if self.model_mismatch else "")]
        lines += explain_steps(self.attempts, self.skipped)
        lines += [f"  tool call {c.name} ({c.id})" for c in self.tool_calls]
        lines += [f"  warning: {w}" for w in self.warnings]
        cost = "unpriced" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        lines.append(f"  cost {cost} ({self.price_version}), {self.latency_ms:.0f} ms, policy {self.policy_version}")
        return "\n".join(lines)


def explain_steps(attempts: tuple[Attempt, ...], skipped: tuple[Skip, ...]) -> list[str]:
    """One line per skipped candidate and per attempt (what an explanation and an error message list)."""
    lines = [f"  skipped {s.alias}: {s.reason} ({s.detail})" for s in skipped]
    for a in attempts:
        what = "served" if a.outcome == "ok" else f"failed: {a.outcome}" + (f" [{a.error_class}]" if a.error_class else "")
        lines.append(f"  tried {a.alias} ({a.model}): {what}, {a.latency_ms:.0f} ms")
    return lines
