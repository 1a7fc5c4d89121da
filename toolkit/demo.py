"""The demo: routed traffic for every intent against the simulator and the real local model, then the dashboards.

``routekit demo`` (what ``make demo`` runs) starts what it needs and, in one route log:

1. writes a synthetic 90-day history (ending yesterday) with known incidents for the dashboards to find;
2. routes a prompt per intent, then shows the honest-fallback rules at work — a primary down, a fallback
   below the quality floor, a rate-limited vendor, the kill switch, an agent loop whose Anthropic model goes
   down between its turns — printing where each request went and why;
3. measures quality: a shadow trial on triage, a baseline over the shipped prompt sets, a fallback drill;
4. runs the playbook on them: blast radius, a recommendation, the key inventory and the launch checklist (the
   kill switch was rehearsed in step 2, the drill in step 3);
5. runs every dashboard notebook through papermill into ``reports/`` (HTML + index.html).
"""
from __future__ import annotations

import os
import shutil
import socket
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

DRILL = "drills/primary-down.yaml"            # under the shipped data
HISTORY_REQUESTS = 60_000
SHADOW = ("triage", "fast-google")          # intent, candidate alias
BASELINE_SETS = ("triage", "gsm8k")         # prompt sets whose expected answers the simulator can be keyed with
BASELINE_MODELS = ("fast-openai", "fast-google", "mid-anthropic", "strong-openai", "local")
SKILL_BY_TIER = {1: 0.6, 2: 0.75, 3: 0.9}   # share of keyed prompts a simulated model answers right

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
            given = urlsplit(os.environ.get("ROUTEKIT_LOCAL_URL", "")).port   # a local model already serving
            port = local_port or given or localmodel.DEFAULT_PORT
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


def run(policy_path: str | None = None, out: str = "demo", echo=print, *,
        reports_dir: str | None = "reports", history_requests: int = HISTORY_REQUESTS) -> dict:
    """The whole demo; ``reports_dir=None`` stops after the quality measurements (no notebooks)."""
    from .resources import DEMO_POLICY, data_file
    from .router import NoEligibleRoute, Router
    from .synth import synthesize

    policy_path = policy_path or str(data_file(DEMO_POLICY))

    out_dir = Path(out)
    log_dir = out_dir / "routelog"
    quality_dir = out_dir / "quality"
    state_dir = out_dir / "state"   # the policy's ledger and circuits (overrides too): the demo's own
    for owned in (log_dir, quality_dir, state_dir):  # the demo's own output, rewritten on every run
        shutil.rmtree(owned, ignore_errors=True)
    os.environ["ROUTEKIT_OVERRIDES"] = str(out_dir / "overrides.json")
    os.environ["ROUTEKIT_STATE_DIR"] = str(state_dir)
    summary: dict = {"served": 0, "failed": 0, "fallbacks": 0, "degraded": 0}
    echo(f"== a synthetic 90-day history ({history_requests:,} requests, known incidents) into {log_dir} ==")
    synthesize(log_dir, days=90, requests=history_requests, seed=7, policy=policy_path, progress=True)
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

        echo("== the synthesis primary (claude-sonnet-4-6) is down: served by its fallback ==")
        sim.state.set("claude-sonnet-4-6", {"down": True})
        ask("synthesis")

        echo("== both tier-3 synthesis models down: the tier-2 fallback is below the floor, so it fails loudly ==")
        sim.state.set("gpt-4.1", {"down": True})
        ask("synthesis")

        echo("== extraction allows degrading: its vendors rate-limited, the regex tool serves, flagged degraded ==")
        sim.state.set("gpt-4.1-mini", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 30})
        sim.state.set("anthropic.claude-3-5-haiku-20241022-v1:0", {"error_status": 503, "error_rate": 1.0})
        ask("extraction")
        sim.state.reset()

        echo("== gemini-3.1-pro-preview rate-limited: review is served by Llama through OpenRouter ==")
        sim.state.set("gemini-3.1-pro-preview", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 30})
        ask("review")
        echo("== Azure's gpt-4.1-mini rate-limited: extraction is served by Claude on Bedrock ==")
        sim.state.set("gpt-4.1-mini", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 30})
        ask("extraction")
        sim.state.reset()

        echo("== kill switch: on-call disables triage's primary; the next request avoids it ==")
        router.overrides.disable("fast-openai", "demo: vendor incident", 3600, by="on-call")
        ask("triage")
        router.overrides.enable("fast-openai", by="on-call", reason="demo: incident over")

        summary["agent_turns"] = agent_loop(router, sim, echo)

        summary["sim_requests"] = sum(sim.state.stats.values())
        summary["drill_ok"] = measure_quality(policy_path, log_dir, quality_dir, sim, echo)
    summary["ready_checks"] = run_playbook(policy_path, log_dir, quality_dir, out_dir / "overrides.json", echo)
    echo(f"demo summary: {summary}; route log in {log_dir}")
    if reports_dir is not None:
        from .reports import run_all

        echo(f"== dashboards: papermill runs every notebook over {log_dir} into {reports_dir}/ ==")
        written = run_all(log_dir, reports_dir, {"policy_path": policy_path, "quality_dir": str(quality_dir),
                                                 "overrides_path": str(out_dir / "overrides.json")})
        echo(f"open {written[-1]}")
    return summary


def agent_loop(router, sim, echo=print) -> int:
    """A short agent loop on the ``agent`` intent — a tool call, the tool's result, the final answer — whose
    Anthropic primary goes down between the turns: an OpenAI model finishes it, and the record says so."""
    from .agentloop import run_agent
    from .drill import wire_name
    from .tools import LOOKUP_INVOICE, lookup_invoice

    primary = router.policy.models[router.policy.routes["agent"].primary]
    echo(f"== an agent loop on `agent`: {primary.alias} calls a tool, then goes down; the fallback finishes ==")

    def primary_down(turn: int, result) -> None:
        for call in result.tool_calls:
            echo(f"  turn {turn + 1}: {result.served_model} ({result.provider}) called {call.name}{call.arguments}")
        sim.state.set(wire_name(primary), {"down": True})

    run = run_agent(router, "agent", "Was invoice INV-2231 charged twice? Check before you answer.",
                    [LOOKUP_INVOICE], {"lookup_invoice": lookup_invoice}, between=primary_down,
                    conversation_id="demo-agent-1")
    sim.state.reset()
    last = run.results[-1]
    echo(last.explain())
    record = last.record or {}
    echo(f"  earlier tool calls by {record.get('earlier_tool_calls_alias')} "
         f"({record.get('earlier_tool_calls_provider')}); answered now by {last.served_model} ({last.provider}); "
         f"conversation switched: {record.get('conversation_switched')}")
    echo(f"  answer: {(run.answer or '')[:100]!r}\n")
    return len(run.results)


def measure_quality(policy_path: str, log_dir: Path, quality_dir: Path, sim, echo=print) -> bool:
    """What the quality dashboard reads, under ``quality_dir``: a shadow trial, a baseline and a fallback drill.
    True when the drill found no silent downgrade and no boundary violation.

    The simulator gets the prompt sets' answer key and a skill per model tier, so the scores differ the way
    a stronger model's would; the local model (the real Gemma) answers for itself.
    """
    import json

    from .drill import run_drill, wire_name
    from .evals import compare_shadow, load_prompts, reference_answers, run_baseline
    from .policy import load_policy
    from .resources import data_file
    from .router import Router

    policy = load_policy(policy_path)
    scored = load_prompts([data_file(f"prompts/{name}.jsonl") for name in BASELINE_SETS])
    sim.state.answers = reference_answers(scored)
    for spec in policy.models.values():
        if spec.model and spec.tier in SKILL_BY_TIER:
            sim.state.set(wire_name(spec), {"skill": SKILL_BY_TIER[spec.tier]})

    echo(f"== shadow trial: every {SHADOW[0]} request also goes to {SHADOW[1]} in the background ==")
    route = policy.routes[SHADOW[0]].model_copy(update={"shadow": SHADOW[1], "shadow_rate": 1.0})
    # an in-memory variant of the policy: its version says so in every record it leaves
    trial = Router(replace(policy, routes={**policy.routes, SHADOW[0]: route}, version=f"{policy.version}+shadow"),
                   log=log_dir)
    for item in [p for p in scored if p.intent == SHADOW[0]] * 3:
        trial.complete(SHADOW[0], list(item.messages), team="demo")
    trial.drain()
    comparisons = [c.to_dict() for c in compare_shadow(log_dir)]
    quality_dir.mkdir(parents=True, exist_ok=True)
    (quality_dir / "shadow.json").write_text(json.dumps(comparisons, indent=2))
    for c in comparisons:
        echo(f"  {c['intent']}: {c['candidate']} vs {c['production']} over {c['pairs']} pairs: {c['verdict']}")

    echo(f"== baseline: {len(scored)} prompts x {len(BASELINE_MODELS)} models ==")
    base = run_baseline(policy, scored, list(BASELINE_MODELS), quality_dir / "baseline", log=log_dir)
    echo(str(base.summary.filter(intent="*").select("model", "mean_score", "p50_latency_ms", "total_cost_usd")))

    echo("== fallback drill: every primary down for half the run ==")
    drills = load_prompts([data_file(f"prompts/{name}.jsonl") for name in ("triage", "extraction", "code")])
    scenario = data_file(DRILL)
    drill = run_drill(policy_path, scenario, drills, sim_url=sim.url, out_dir=quality_dir / "drills" / scenario.stem,
                      log=log_dir, progress=True)
    totals = drill.summary["totals"]
    echo(f"  silent downgrades: {totals['silent_downgrades']}; drill {'passed' if drill.ok else 'FAILED'}")
    return drill.ok


def run_playbook(policy_path: str, log_dir: Path, quality_dir: Path, overrides: Path, echo=print) -> str:
    """The playbook commands on the demo's policy, log, measurements and kill-switch history (what the readiness
    dashboard shows); returns "passed/all" readiness checks."""
    from .costs import PriceBook
    from .playbook import blast_radius, key_inventory, readiness, recommend, removal
    from .playbook.measurements import read_scores
    from .playbook.traffic import load_traffic
    from .policy import load_policy

    policy, prices = load_policy(policy_path), PriceBook.load()
    traffic = load_traffic(log_dir)
    where = f"--policy {policy_path} --log {log_dir}"
    echo(f"== the playbook: routekit blast-radius {where} --provider anthropic ==")
    echo(blast_radius(policy, removal(policy, provider="anthropic"), traffic=traffic, prices=prices).render())
    echo(f"== routekit recommend --intent triage --quality {quality_dir} --policy {policy_path} ==")
    echo(recommend(read_scores([quality_dir]), "triage", policy=policy, source=str(quality_dir)).render())
    echo(f"== routekit keys {where} ==")
    echo(key_inventory(policy, traffic=traffic).render())
    echo(f"== routekit readiness {where} --quality {quality_dir} --overrides {overrides} ==")
    ready = readiness(policy, quality=[quality_dir], traffic=traffic, overrides=overrides, prices=prices)
    echo(ready.render())
    return f"{sum(c.ok for c in ready.checks)}/{len(ready.checks)}"
