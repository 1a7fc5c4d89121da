"""The fault matrix: every simulated fault through every protocol, called and streamed, with litellm's real
adapters and routekit's transport — the error kind each becomes (``routekit sim matrix``, docs/errors.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .server import SimServer

# How litellm reaches each protocol of the simulator: model string, api_base suffix after the
# simulator's URL, and any other ModelSpec setting the provider needs.
PROVIDERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "openai": ("openai/gpt-4o-mini", "/v1", {}),
    "azure": ("azure/gpt-4.1-mini", "", {"api_version": "2024-10-21"}),
    "openrouter": ("openrouter/meta-llama/llama-3.3-70b-instruct", "/api/v1", {}),
    "anthropic": ("anthropic/claude-haiku-4-5", "", {}),
    "gemini": ("gemini/gemini-2.5-flash-lite", "/v1beta", {}),
    "bedrock": ("bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", "",
                {"params": {"aws_region_name": "eu-central-1"}}),
    "ollama": ("ollama_chat/llama3.2", "", {}),
}

# Each simulated fault and the taxonomy kind it must become, whatever the protocol.
FAULT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "down": ({"down": True}, "connection"),
    "429 + Retry-After": ({"error_rate": 1.0, "error_status": 429, "retry_after_s": 7}, "rate_limited"),
    "500": ({"error_rate": 1.0, "error_status": 500}, "server_error"),
    "503": ({"error_rate": 1.0, "error_status": 503}, "server_error"),
    "529 overloaded": ({"error_rate": 1.0, "error_status": 529}, "overloaded"),
    "timeout": ({"timeout": True}, "timeout"),
    "connection reset": ({"fault": "reset"}, "connection"),
    "empty answer": ({"empty": True}, "empty"),
    "HTML body": ({"fault": "html"}, "malformed"),
    "malformed JSON": ({"fault": "malformed"}, "malformed"),
    "stream cut": ({"fault": "cut_stream"}, "connection"),
    "stalled stream": ({"fault": "stall_stream"}, "timeout"),
    "400": ({"error_rate": 1.0, "error_status": 400}, "bad_request"),
    "401": ({"error_rate": 1.0, "error_status": 401}, "auth"),
    "context window": ({"fault": "context_window"}, "context_window"),
    "content filter": ({"fault": "content_policy"}, "content_policy"),
}
# Faults a vendor's protocol has no way to express (Ollama has no content filter).
NOT_APPLICABLE = {("ollama", "content filter")}


@dataclass(frozen=True)
class Cell:
    fault: str
    mode: str                    # "call" or "stream"
    protocol: str
    expected: str
    kind: str | None             # None: the call succeeded
    error_class: str | None      # what litellm raised (or how the answer failed)
    retryable: bool | None
    status: int | None
    retry_after_s: float | None
    after_first_token: bool      # a stream failed after delivering text
    requests: int                # requests the simulator received for this call

    @property
    def ok(self) -> bool:
        return self.kind == self.expected and self.requests == 1


def fault_matrix(sim: SimServer | None = None, timeout_s: float = 0.5, progress: bool = False) -> list[Cell]:
    """Every protocol x every fault x (call, stream), through the real litellm path and the transport.

    Uses ``sim`` (reset before and after) or starts a simulator of its own.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from ..policy import ModelSpec
    from ..transport import LiteLLMTransport, TransportError

    own = sim is None
    sim = sim or SimServer().start()
    transport = LiteLLMTransport()
    specs = {p: ModelSpec(alias=p, model=model, tier=1, api_base=sim.url + suffix, timeout_s=timeout_s, **extra)
             for p, (model, suffix, extra) in PROVIDERS.items()}
    wire = {p: spec.model.split("/", 1)[1] for p, spec in specs.items()}

    messages = [{"role": "user", "content": "Say hello to the matrix."}]

    def one(protocol: str, mode: str) -> tuple[Any, bool]:
        """(the TransportError or None, whether the stream had delivered text before it)"""
        try:
            if mode == "call":
                transport.complete(specs[protocol], messages)
            else:
                list(transport.stream(specs[protocol], messages))
            return None, False
        except TransportError as e:
            return e, bool(e.partial)

    cells: list[Cell] = []
    rows = [(f, m) for f in FAULT_CASES for m in ("call", "stream")]
    try:
        with ThreadPoolExecutor(max_workers=len(PROVIDERS)) as pool:
            # A plain call and stream per protocol first: litellm's first use of a provider (imports, clients)
            # must not fall inside the short timeout of the first row's cells.
            sim.state.reset()
            list(pool.map(lambda pm: one(*pm), [(p, m) for p in PROVIDERS for m in ("call", "stream")]))
            for fault, mode in tqdm(rows, desc="fault matrix", unit="row", disable=not progress):
                behaviour, expected = FAULT_CASES[fault]
                sim.state.reset()
                sim.state.stats.clear()
                for p in PROVIDERS:
                    sim.state.set(wire[p], behaviour)
                todo = [p for p in PROVIDERS if (p, fault) not in NOT_APPLICABLE]
                for p, (err, partial) in zip(todo, pool.map(lambda p: one(p, mode), todo)):
                    cells.append(Cell(fault, mode, p, expected, *(
                        (err.kind, err.error_class, err.retryable, err.status, err.retry_after_s) if err
                        else (None, None, None, None, None)), partial, sim.state.stats[(p, wire[p])]))
    finally:
        sim.state.reset()
        sim.state.stats.clear()
        if own:
            sim.stop()
    return cells


def matrix_table(cells: list[Cell]) -> str:
    """The matrix as a Markdown table: one row per fault and mode, one column per protocol; each cell
    names what litellm raised there (bold with the kind if it is not the row's kind)."""
    protocols = list(PROVIDERS)
    by = {(c.fault, c.mode, c.protocol): c for c in cells}
    head = ["fault", "mode", "kind", "retryable", *protocols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fault, (_, expected) in FAULT_CASES.items():
        for mode in ("call", "stream"):
            row = [fault, mode, expected, "yes" if _retryable(expected) else "no"]
            for p in protocols:
                c = by.get((fault, mode, p))
                if c is None:
                    row.append("n/a")
                    continue
                what = {"empty": "no text", "content_filter": "filter stop"}.get(c.error_class or "", c.error_class)
                text = what if c.kind == expected else f"**{c.kind or 'served'}** ({what})"
                if c.after_first_token:
                    text += " †"
                if c.retry_after_s is not None:
                    text += f" ({c.retry_after_s:g} s)"
                if c.requests != 1:
                    text += f" [{c.requests} requests]"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _retryable(kind: str) -> bool:
    from ..transport import RETRYABLE

    return kind in RETRYABLE
