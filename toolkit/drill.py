"""Fallback drills: run prompt sets through the Router while the simulator breaks vendors on a schedule.

Scenario file (YAML)::

    description: the primary model of every intent is down for the first half of the run
    repeat: 2                     # run the prompt sets this many times (default 1)
    steps:
      - {at: 0.0, primaries: true, set: {down: true}}
      - {at: 0.0, vendor: bedrock, set: {empty: true}}
      - {at: 0.2, alias: strong-openai, set: {error_rate: 1.0, error_status: 429, retry_after_s: 1}}
      - {at: 0.3, model: gpt-4o-mini, set: {latency_ms: 400}}
      - {at: 0.5, reset: true}

``at`` is a fraction of the run: a step takes effect before request ``ceil(at * N)`` of ``N``.  Each
step picks its models with one selector — ``model`` (the name the simulator sees), ``alias`` (a policy
alias), ``vendor`` (every policy model of that vendor) or ``primaries: true`` (each route's first
candidate) — and ``set`` takes the simulator's Behaviour fields; ``reset: true`` restores every model.
Only models served by the simulator can be broken; a selected model served elsewhere (the real local
model) is listed in the report as not controllable.  Requests are interleaved so that each intent's
prompts are spread evenly over the whole run, and so over every phase of the scenario.

What each request is counted as (per intent):

=====================  ===================================================================================
served                 answered
served_by_fallback     answered by other than the route's first eligible candidate
degraded               answered below the route's ``min_tier`` *and* flagged ``degraded`` (allowed)
silent_downgrade       answered by a model whose tier **in the policy** is below the route's ``min_tier``
                       without the ``degraded`` flag — must be zero
failed_loudly          no candidate could serve: the Router raised, naming every candidate and why
boundary_violation     the request had to stay on local models — the policy says so (route boundary or
                       sensitivity) or the prompt set does (``local_only``) — but the route log shows an
                       attempt on a non-local model (``boundary_violation_records``) or the simulator
                       received requests during it (``boundary_violation_sim``; requests are sequential
                       and background shadow calls are drained first) — must be zero
=====================  ===================================================================================

The exit status of ``routekit drill`` is 1 when any silent downgrade or boundary violation happened.
Outputs in ``OUT/``: ``drill_report.json`` (scenario, policy, ``started_at`` / ``finished_at`` in UTC, steps
applied, totals, per intent, violations: what ``routekit readiness`` reads to tell which intents were drilled when),
``drill_requests.parquet`` (one row per request) and ``drill_intents.parquet`` (one row per intent) —
what the quality notebook reads.
"""
from __future__ import annotations

import json
import math
import os
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import DrillError, YamlError
from .evals.items import undeclared_labels

SELECTORS = ("model", "alias", "vendor", "primaries")


@dataclass(frozen=True)
class Step:
    at: float
    label: str                        # the step as written, for the report
    models: tuple[str, ...] = ()      # simulator model names
    set: dict | None = None
    reset: bool = False
    line: int | None = None


@dataclass(frozen=True)
class Drill:
    path: str
    description: str
    repeat: int
    steps: tuple[Step, ...]
    not_controllable: tuple[str, ...]  # selected aliases the simulator does not serve


def wire_name(spec: Any) -> str:
    """The model name a provider request carries: litellm strips its provider prefix."""
    return spec.model.split("/", 1)[1] if "/" in spec.model else spec.model


def sim_served(spec: Any, sim_url: str) -> bool:
    return bool(spec.model and spec.api_base and spec.api_base.rstrip("/").startswith(sim_url.rstrip("/")))


def load_drill(path: str | os.PathLike, policy: Any, sim_url: str) -> Drill:
    """Read and resolve a scenario against a policy; :class:`DrillError` names file, line and problem."""
    from .sim import Behaviour
    from .yamlfile import read_yaml

    try:
        doc = read_yaml(str(path), Path(path).read_bytes(), max_bytes=1 << 20, what="a drill")
    except YamlError as e:
        raise DrillError(str(e.problem)) from None
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise DrillError(f"{path}: a scenario is a mapping with a 'steps' list")
    problems, steps, uncontrolled = [], [], []
    repeat = data.get("repeat", 1)
    if not isinstance(repeat, int) or repeat < 1:
        problems.append(f"{path}: repeat: must be a positive integer")
    for i, raw in enumerate(data["steps"]):
        line = doc.line_of(("steps", i))
        where = f"{path}:{line}: steps[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: a step is a mapping like {{at: 0.0, alias: NAME, set: {{down: true}}}}")
            continue
        unknown = set(raw) - {"at", "set", "reset", *SELECTORS}
        at = raw.get("at")
        chosen = [s for s in SELECTORS if s in raw]
        if unknown:
            problems.append(f"{where}: unknown key(s) {sorted(unknown)}")
        elif not isinstance(at, (int, float)) or isinstance(at, bool) or not 0 <= at <= 1:
            problems.append(f"{where}: at: a fraction of the run between 0 and 1")
        elif raw.get("reset"):
            if chosen or "set" in raw:
                problems.append(f"{where}: a reset step takes no selector and no 'set'")
            else:
                steps.append(Step(float(at), "reset", reset=True, line=line))
        elif len(chosen) != 1 or not isinstance(raw.get("set"), dict):
            problems.append(f"{where}: give one selector ({', '.join(SELECTORS)}) and 'set: {{...}}', or 'reset: true'")
        else:
            try:
                Behaviour.from_dict(raw["set"])
            except (TypeError, ValueError) as e:
                problems.append(f"{where}: set: {e}")
                continue
            try:
                aliases = _select(policy, chosen[0], raw[chosen[0]])
            except DrillError as e:
                problems.append(f"{where}: {e}")
                continue
            names = [wire_name(policy.models[a]) for a in aliases if sim_served(policy.models[a], sim_url)]
            uncontrolled += [a for a in aliases if not sim_served(policy.models[a], sim_url)]
            if chosen[0] == "model":
                names = [raw["model"]]
            label = f"{chosen[0]}={raw[chosen[0]]} set {json.dumps(raw['set'])}"
            steps.append(Step(float(at), label, tuple(dict.fromkeys(names)), raw["set"], line=line))
    if problems:
        raise DrillError("\n".join(problems))
    return Drill(str(path), str(data.get("description") or ""), repeat,
                    tuple(sorted(steps, key=lambda s: s.at)), tuple(dict.fromkeys(uncontrolled)))


def _select(policy: Any, selector: str, value: Any) -> list[str]:
    models = policy.models
    if selector == "model":
        return [a for a, m in models.items() if m.model and wire_name(m) == value]
    if selector == "alias":
        if value not in models:
            raise DrillError(f"alias: unknown model alias {value!r} (known: {', '.join(sorted(models))})")
        return [value]
    if selector == "vendor":
        found = [a for a, m in models.items() if not m.is_tool and m.effective_vendor == value]
        if not found:
            vendors = sorted({m.effective_vendor for m in models.values() if not m.is_tool})
            raise DrillError(f"vendor: no model of vendor {value!r} in the policy (vendors: {', '.join(vendors)})")
        return found
    if value is not True:
        raise DrillError("primaries: must be true")
    return list(dict.fromkeys(policy.chain(i)[0] for i in policy.routes if not models[policy.chain(i)[0]].is_tool))


class SimControl:
    """The simulator's HTTP control API (works the same for an in-process and a remote simulator)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.url + path, method=method, data=None if body is None else
                                     json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def set(self, model: str, behaviour: dict) -> None:
        self._call("POST", "/_sim/models/" + urllib.request.quote(model, safe=""), behaviour)

    def reset(self) -> None:
        self._call("POST", "/_sim/reset", {})

    def stats(self) -> dict[str, int]:
        return self._call("GET", "/_sim/stats")["models"]


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class DrillReport:
    summary: dict
    intents: Any        # pl.DataFrame, one row per intent
    requests: Any       # pl.DataFrame, one row per request
    out_dir: Path | None = None

    @property
    def ok(self) -> bool:
        t = self.summary["totals"]
        return not (t["silent_downgrades"] or t["boundary_violations_records"] or t["boundary_violations_sim"])


def interleave(items: list[Any], repeat: int = 1) -> list[Any]:
    """Spread each intent's prompts evenly over the run (the k-th of n at position (k + 0.5) / n)."""
    by_intent: dict[str, list] = {}
    for item in items * repeat:
        by_intent.setdefault(item.intent, []).append(item)
    placed = [((k + 0.5) / len(group), order, k, item)
              for order, group in enumerate(by_intent.values()) for k, item in enumerate(group)]
    return [p[-1] for p in sorted(placed, key=lambda p: p[:3])]


def run_drill(policy_path: str | os.PathLike, scenario_path: str | os.PathLike, prompts: list[Any], *,
              sim_url: str | None = None, out_dir: str | os.PathLike | None = None,
              log: str | os.PathLike | None = None, progress: bool = True) -> DrillReport:
    """Run the drill (see the module docstring); the simulator is started in-process unless ``sim_url``."""
    from .policy import load_policy
    from .sim import SimServer

    with ExitStack() as stack:
        if sim_url is None:
            sim_url = stack.enter_context(SimServer()).url
        stack.enter_context(_env("ROUTEKIT_SIM_URL", sim_url))   # the policy's ${ROUTEKIT_SIM_URL}
        policy = load_policy(policy_path)
        scenario = load_drill(scenario_path, policy, sim_url)
        unknown = {}
        for item in prompts:
            if item.intent not in policy.routes:
                unknown.setdefault(item.intent, item.source)
        problems = [f"{src}: intent {i!r} is not a route of {policy.path} (routes: {', '.join(sorted(policy.routes))})"
                    for i, src in unknown.items()] + undeclared_labels(prompts, policy)
        if problems:
            raise DrillError("\n".join(problems))
        sim = SimControl(sim_url)
        sim.reset()
        started = _now()
        try:
            rows, applied, sim_seen = _run(policy, scenario, interleave(prompts, scenario.repeat), sim, log, progress)
        finally:
            sim.reset()   # leave the simulator as the drill found it (its scenario)
    report = _report(policy, scenario, rows, applied, sim_seen)
    report.summary.update(started_at=started, finished_at=_now())
    if out_dir is not None:
        report.out_dir = write_report(report, out_dir)
    return report


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _run(policy: Any, scenario: Drill, run: list[Any], sim: SimControl, log: Any,
         progress: bool) -> tuple[list[dict], list[dict], dict[str, int]]:
    from collections import Counter

    from tqdm.auto import tqdm

    from .errors import RoutingError
    from .router import Router

    router = Router(policy, log=log) if log is not None else Router(policy)
    local_names = {wire_name(m) for m in policy.models.values() if m.model and m.effective_boundary == "local"}
    pending = list(scenario.steps)
    applied: list[dict] = []
    rows: list[dict] = []
    seen: Counter[str] = Counter()   # simulator requests per model; a reset clears its counters
    n = len(run)
    for i, item in enumerate(tqdm(run, desc="drill", unit="req", disable=not progress)):
        while pending and i >= math.ceil(pending[0].at * n - 1e-9):
            step = pending.pop(0)
            if step.reset:
                router.drain()
                seen.update(sim.stats())
                sim.reset()
            for name in step.models:
                sim.set(name, step.set)
            applied.append({"before_request": i, "at": step.at, "step": step.label, "models": list(step.models)})
        route = policy.routes[item.intent]
        needs_local = item.local_only or policy.required_boundary(route, item.sensitivity) == "local"
        before = None
        if needs_local:
            router.drain()
            before = sim.stats()
        try:
            result = router.complete(item.intent, list(item.messages), team="drill", sensitivity=item.sensitivity,
                                     max_tokens=item.max_tokens)
            attempts = [a.alias for a in result.attempts]
            row = {"served_alias": result.served_model, "fallback_used": result.fallback_used,
                   "degraded_flag": result.degraded, "error": None, "request_id": result.request_id,
                   "cost_usd": result.cost_usd, "latency_ms": result.latency_ms}
        except RoutingError as e:
            rec = getattr(e, "record", None) or {}
            attempts = [a["alias"] for a in rec.get("attempts") or []]
            row = {"served_alias": None, "fallback_used": False, "degraded_flag": bool(rec.get("degraded")),
                   "error": str(e).splitlines()[0][:300], "request_id": rec.get("request_id"),
                   "cost_usd": rec.get("cost_usd"), "latency_ms": rec.get("latency_ms")}
        leaked = {}
        if needs_local:
            router.drain()
            after = sim.stats()
            leaked = {m: c - before.get(m, 0) for m, c in after.items()
                      if c > before.get(m, 0) and m not in local_names}
        rows.append(_classify(policy, item, i, len(applied), needs_local, attempts, leaked, row))
    router.drain()
    seen.update(sim.stats())
    return rows, applied, dict(seen)


def _classify(policy: Any, item: Any, i: int, phase: int, needs_local: bool, attempts: list[str],
              leaked: dict[str, int], row: dict) -> dict:
    """One request's verdicts, from the policy's own tiers and boundaries (not the Router's flags)."""
    route = policy.routes[item.intent]
    served = row["served_alias"]
    tier = policy.models[served].tier if served else None
    below = served is not None and tier < route.min_tier
    off_boundary = [a for a in attempts if policy.models[a].effective_boundary != "local"] if needs_local else []
    return {"request": i, "phase": phase, "intent": item.intent, "prompt_id": item.id, "needs_local": needs_local,
            "outcome": "served" if served else "failed_loudly", "served_alias": served, "served_tier": tier,
            "min_tier": route.min_tier, "fallback_used": row["fallback_used"], "degraded": row["degraded_flag"],
            "below_floor": below, "silent_downgrade": below and not row["degraded_flag"],
            "boundary_violation_records": bool(off_boundary), "boundary_violation_sim": bool(leaked),
            "violating_models": ",".join([*off_boundary, *leaked]) or None, "attempts": ",".join(attempts),
            "error": row["error"], "request_id": row["request_id"], "cost_usd": row["cost_usd"],
            "latency_ms": row["latency_ms"]}


def _report(policy: Any, scenario: Drill, rows: list[dict], applied: list[dict],
            sim_seen: dict[str, int]) -> DrillReport:
    import polars as pl

    requests = pl.DataFrame(rows, infer_schema_length=None)
    counts = [pl.len().alias("requests"), (pl.col("outcome") == "served").sum().alias("served"),
              (pl.col("fallback_used") & (pl.col("outcome") == "served")).sum().alias("served_by_fallback"),
              (pl.col("degraded") & (pl.col("outcome") == "served")).sum().alias("degraded"),
              pl.col("below_floor").sum().alias("below_floor"),
              pl.col("silent_downgrade").sum().alias("silent_downgrades"),
              (pl.col("outcome") == "failed_loudly").sum().alias("failed_loudly"),
              pl.col("boundary_violation_records").sum().alias("boundary_violations_records"),
              pl.col("boundary_violation_sim").sum().alias("boundary_violations_sim")]
    intents = requests.group_by("intent", maintain_order=True).agg(counts).sort("intent")
    totals = requests.select(counts).row(0, named=True)
    violations = requests.filter(pl.col("silent_downgrade") | pl.col("boundary_violation_records")
                                 | pl.col("boundary_violation_sim"))
    summary = {
        "scenario": scenario.path, "description": scenario.description, "policy": policy.path,
        "policy_version": policy.version, "requests": len(requests), "repeat": scenario.repeat,
        "steps_applied": applied, "not_controllable": list(scenario.not_controllable),
        "totals": totals, "intents": intents.to_dicts(), "violations": violations.to_dicts(),
        "simulator_requests": sum(sim_seen.values()), "simulator_requests_by_model": sim_seen,
        "ok": not (totals["silent_downgrades"] or totals["boundary_violations_records"]
                   or totals["boundary_violations_sim"]),
    }
    return DrillReport(summary, intents, requests)


def write_report(report: DrillReport, out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drill_report.json").write_text(json.dumps(report.summary, indent=2, default=str) + "\n")
    report.requests.write_parquet(out / "drill_requests.parquet")
    report.intents.write_parquet(out / "drill_intents.parquet")
    return out
