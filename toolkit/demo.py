"""The demo: routed traffic for every intent against the simulator and the real local model.

``routekit demo`` (what ``make demo`` runs) starts what it needs, routes a prompt
per intent, then shows the honest-fallback rules at work — a primary down, a
fallback below the quality floor, a private request with the local model down —
printing where each request went and why.
"""
from __future__ import annotations

import os
import socket
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

PROMPTS = {
    "triage": "Customer says: 'my invoice INV-2231 was charged twice'. Is this billing, bug or how-to?",
    "extraction": "Extract the fields: invoice INV-2231 from billing@acme.example dated 2026-11-02, total $1,240.50.",
    "synthesis": "Summarise the three incident reports from last week into one paragraph for the board.",
    "code": "Write a Python function that deduplicates a list while keeping order.",
    "review": "Review this diff: the retry loop now sleeps 0s on a 429 before trying again.",
    "private": "The capital of France is",
    "private-chat": "The capital of France is",
    "drafts": "Draft a two-line reply thanking the customer for their refund request.",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def services(sim_port: int | None = None, local_port: int | None = None, local: bool = True) -> Iterator[dict]:
    """Start the simulator (in-process) and the local model server (subprocess) unless already running."""
    from . import localmodel
    from .sim import SimServer

    with ExitStack() as stack:
        sim = stack.enter_context(SimServer(port=sim_port or 0))
        env = {"ROUTEKIT_SIM_URL": sim.url}
        if local:
            port = local_port or localmodel.DEFAULT_PORT
            if not localmodel.is_up(port):
                port = local_port or (localmodel.DEFAULT_PORT if _port_free(localmodel.DEFAULT_PORT) else free_port())
                proc = localmodel.start(port)
                stack.callback(proc.terminate)
            env["ROUTEKIT_LOCAL_URL"] = f"http://127.0.0.1:{port}"
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        stack.callback(lambda: [os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
                                for k, v in old.items()])
        yield {"sim": sim, **env}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def run(policy_path: str = "data/policy.demo.yaml", out: str = "demo", echo=print) -> dict:
    from .router import NoEligibleRoute, Router

    out_dir = Path(out)
    log_dir = out_dir / "routelog"
    os.environ["ROUTEKIT_OVERRIDES"] = str(out_dir / "overrides.json")
    summary: dict = {"served": 0, "failed": 0, "fallbacks": 0, "degraded": 0}
    with services() as svc:
        sim = svc["sim"]
        router = Router(policy_path, log=log_dir)

        def ask(intent: str, prompt: str | None = None, **kw) -> None:
            try:
                r = router.complete(intent, prompt or PROMPTS[intent], team=kw.pop("team", "demo"), **kw)
            except NoEligibleRoute as e:
                summary["failed"] += 1
                echo(f"FAILED LOUDLY: {e}\n")
                return
            summary["served"] += 1
            summary["fallbacks"] += r.fallback_used
            summary["degraded"] += r.degraded
            echo(r.explain())
            echo(f"  answer: {r.text[:100]!r}\n")

        echo("== one request per intent ==")
        for intent in PROMPTS:
            ask(intent, sensitivity="private" if intent.startswith("private") else None)

        echo("== the synthesis primary (claude-sonnet-4-5) is down: served by its fallback ==")
        sim.state.set("claude-sonnet-4-5", {"down": True})
        ask("synthesis")

        echo("== both tier-3 synthesis models down: the tier-2 fallback is below the floor, so it fails loudly ==")
        sim.state.set("gpt-4.1", {"down": True})
        ask("synthesis")

        echo("== extraction allows degrading: its vendors rate-limited, the regex tool serves, flagged degraded ==")
        sim.state.set("gpt-4.1-mini", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 30})
        sim.state.set("anthropic.claude-3-5-haiku-20241022-v1:0", {"error_status": 503, "error_rate": 1.0})
        ask("extraction")
        sim.state.reset()

        echo("== gemini-2.5-pro rate-limited: review is served by Llama through OpenRouter ==")
        sim.state.set("gemini-2.5-pro", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 30})
        ask("review")
        echo("== Azure's gpt-4.1-mini rate-limited: extraction is served by Claude on Bedrock ==")
        sim.state.set("gpt-4.1-mini", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 30})
        ask("extraction")
        sim.state.reset()

        echo("== kill switch: on-call disables triage's primary; the next request avoids it ==")
        router.overrides.disable("fast-openai", "demo: vendor incident", 3600, by="on-call")
        ask("triage")
        router.overrides.enable("fast-openai")

        stats = sim.state.stats
        summary["sim_requests"] = sum(stats.values())
    echo(f"demo summary: {summary}; route log in {log_dir}")
    return summary
