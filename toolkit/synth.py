"""A realistic route-log history, so dashboards and reviews have something true to find.

``synthesize(log_dir, days, requests, seed, policy)`` writes ``requests`` records over ``days``
closed UTC days through the real :class:`~toolkit.routelog.RouteLogWriter` (its batch API), one
day at a time, and compacts each day with the real compactor.  What the router would have done
is followed closely: the policy's chains, quality floors (``below_floor`` skips, ``degrade``
routes), circuit-open skips during an outage, verification, and every attempt priced by the
:class:`~toolkit.costs.PriceBook` snapshot (cost coefficients come from ``Rates.cost`` itself).

Traffic: teams (the routes' owners plus ``growth``) each with a mix of intents, a diurnal
pattern around each team's working hours, quieter weekends, slow growth, token sizes by route
tier, repeated prompts (Zipf), cached reads where the model prices them.

Injected, and written to ``LOG_DIR/_synth_truth.json`` with dates, team and models:

- a vendor outage: every model of one vendor fails (timeouts, then 503s) for a few hours;
  requests fall back, and the open circuit skips the vendor's models (``circuit_open``);
- a rate-limit storm on one model (429s with Retry-After), with a few *degraded* serves where
  the route allows serving below its floor and its other candidates failed too;
- a runaway team: one team's volume and prompt size on an expensive intent jump from a date;
- a slow latency creep in one model;
- a price change of one model from a date, recorded in ``price_version``.

Generation is vectorised (numpy + polars) one day at a time, so memory holds one day at most;
writing, reading back and compacting dominate: 10M records over 90 days took 10.5 minutes on two
busy cores (bench/log_scan.py), 100k (the command's default) a few seconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .costs import PriceBook, Usage
from .policy import ModelSpec, Policy, load_policy
from .resources import DEMO_POLICY, data_file
from .routelog import ATTEMPT_FIELDS, FIELD_NAMES, SKIP_FIELDS, RouteLogWriter, compact, parse_day

TRUTH_NAME = "_synth_truth.json"
RUNAWAY_TEAM = "growth"
DEFAULT_POLICY = data_file(DEMO_POLICY)

# Failure kinds as the transport reports them:
# kind -> (error_class, HTTP status, retryable, typical latency ms (None: the model's timeout), message)
KINDS: dict[str, tuple[str, int | None, bool, float | None, str]] = {
    "rate_limited": ("RateLimitError", 429, True, 60.0, "rate limit reached for requests, retry later"),
    "server_error": ("InternalServerError", 503, True, 300.0, "503 Service Unavailable"),
    "timeout": ("Timeout", None, True, None, "request timed out"),
    "connection": ("APIConnectionError", None, True, 15.0, "connection reset by peer"),
    "empty": ("EmptyResponse", 200, True, 200.0, "200 with no text"),
    "bad_request": ("BadRequestError", 400, False, 80.0, "400 invalid request"),
}
KIND_NAMES = list(KINDS)
BASE_KIND_P = np.array([0.30, 0.35, 0.10, 0.10, 0.13, 0.02])  # background failures, by kind
BASE_FAIL = 0.004                                              # background failure rate of a model call
VERIFY_FAIL = 0.003                                            # served text that fails the route's check
TIER_SHAPE = {  # tier -> (median input tokens, median output tokens, time to first token ms, tokens/s)
    0: (300, 40, 450.0, 25.0), 1: (700, 90, 350.0, 120.0), 2: (2500, 350, 600.0, 80.0), 3: (5000, 800, 1100.0, 75.0),
}


@dataclass(frozen=True)
class Incidents:
    """What gets injected, and when (day indexes from the first day)."""

    outage_vendor: str
    outage_day: int
    outage_hours: tuple[float, float]
    storm_alias: str
    storm_day: int
    storm_hours: tuple[float, float]
    storm_rate: float
    runaway_team: str
    runaway_intent: str
    runaway_day: int
    runaway_volume: float
    runaway_input: float
    creep_alias: str
    creep_day: int
    creep_factor: float        # latency multiplier reached on the last day
    price_alias: str
    price_day: int
    price_factor: float


def default_incidents(policy: Policy, days: int) -> Incidents:
    """Pick the incidents from the policy itself, so any policy gets a coherent story."""
    models, routes = policy.models, policy.routes
    ordered = sorted(routes.values(), key=lambda r: -r.min_tier)  # stable: file order within a tier
    vendor_of = lambda a: models[a].effective_vendor  # noqa: E731
    hosted = lambda a: not models[a].is_tool and models[a].effective_boundary == "vendor"  # noqa: E731

    outage_route = next((r for r in ordered if hosted(r.primary) and any(
        hosted(a) and vendor_of(a) != vendor_of(r.primary) for a in policy.chain(r.intent)[1:])), None)
    if outage_route is None:
        raise ValueError("the policy has no route with a fallback from another vendor: nothing to fail over to")
    outage_vendor = vendor_of(outage_route.primary)
    degrade = [r for r in routes.values() if r.on_exhausted == "degrade" and hosted(r.primary)]
    storm_route = degrade[0] if degrade else min((r for r in routes.values() if hosted(r.primary)),
                                                 key=lambda r: r.min_tier)
    taken = {storm_route.primary}
    others = [r.primary for r in ordered if hosted(r.primary) and vendor_of(r.primary) != outage_vendor
              and r.primary not in taken]
    creep = others[0] if others else storm_route.primary
    priced = [a for a in others[1:] if a != creep] or [outage_route.primary]
    at = lambda frac: min(days - 1, int(days * frac))  # noqa: E731
    return Incidents(
        outage_vendor=outage_vendor, outage_day=at(0.55), outage_hours=(14.0, 17.5),
        storm_alias=storm_route.primary, storm_day=at(0.68), storm_hours=(15.0, 17.0), storm_rate=0.6,
        runaway_team=RUNAWAY_TEAM, runaway_intent=ordered[0].intent, runaway_day=at(0.78),
        runaway_volume=6.0, runaway_input=1.5,
        creep_alias=creep, creep_day=at(0.3), creep_factor=1.8,
        price_alias=priced[0], price_day=at(0.45), price_factor=0.75,
    )


@dataclass(frozen=True)
class SynthResult:
    log_dir: Path
    truth_path: Path
    truth: dict[str, Any]



# --- the world: teams, routes, candidates, prices ------------------------------------------------


class _World:
    """What does not change from day to day, as arrays indexed by team, intent and alias."""

    def __init__(self, policy: Policy, book: PriceBook, sc: Incidents, seed: int, start: date, days: int):
        rng = np.random.default_rng([seed, 1])
        self.policy, self.sc, self.start, self.days = policy, sc, start, days
        self.aliases = list(policy.models)
        self.alias_ix = {a: i for i, a in enumerate(self.aliases)}
        self.specs: list[ModelSpec] = [policy.models[a] for a in self.aliases]
        self.intents = list(policy.routes)
        routes = [policy.routes[i] for i in self.intents]

        # Teams: the routes' owners, plus the one that will run away; each uses its own routes most.
        owner = [r.owner or f"team-{r.intent}" for r in routes]
        self.teams = list(dict.fromkeys([*owner, sc.runaway_team]))
        self.local = np.array([policy.required_boundary(r, None) == "local" for r in routes])
        # Records carry only labels the policy declares (the Router refuses any other): a local class on local
        # routes, a vendor class (or none) elsewhere.
        classes = {b: [k for k, v in sorted(policy.sensitivity.items()) if v == b] for b in ("local", "vendor")}
        self.local_label = next(iter(classes["local"]), None)
        self.vendor_labels = np.array([*classes["vendor"], None], dtype=object)
        shared = np.where(self.local, 0.0, 1.0 / max(1, (~self.local).sum()))  # private routes stay with owners
        mix = np.empty((len(self.teams), len(routes)))
        for t, team in enumerate(self.teams):
            own = np.array([i == sc.runaway_intent for i in self.intents]) if team == sc.runaway_team \
                else np.array([o == team for o in owner])
            w = np.where(own, 3.0 / max(1, own.sum()), shared)
            mix[t] = w / w.sum()
        share = rng.dirichlet(np.full(len(self.teams), 5.0))
        share[self.teams.index(sc.runaway_team)] = 0.04
        self.team_intent = share[:, None] / share.sum() * mix
        peaks = rng.choice([9.0, 11.0, 15.0, 17.0, 19.0], size=len(self.teams))  # working hours, UTC
        dist = np.abs(np.arange(24)[None, :] + 0.5 - peaks[:, None])
        hp = 0.12 + np.exp(-0.5 * (np.minimum(dist, 24 - dist) / 3.0) ** 2)
        self.hour_p = hp / hp.sum(axis=1, keepdims=True)

        # Routes: the queue the router tries (quality floor applied), static skips, token sizes.
        self.min_tier = np.array([r.min_tier for r in routes])
        self.verify = np.array([r.verify is not None for r in routes])
        self.first = np.array([self.alias_ix[policy.chain(i)[0]] for i in self.intents])
        queues, self.below_skips = [], []
        for r in routes:
            chain = policy.chain(r.intent)
            above = [a for a in chain if policy.models[a].tier >= r.min_tier]
            below = [a for a in chain if policy.models[a].tier < r.min_tier]
            queues.append(above + below if r.on_exhausted == "degrade" else above)
            self.below_skips.append([] if r.on_exhausted == "degrade" else
                                    [(a, f"tier {policy.models[a].tier} < min_tier {r.min_tier}") for a in below])
        self.queue = np.full((len(routes), max(map(len, queues))), -1)
        for r, q in enumerate(queues):
            self.queue[r, :len(q)] = [self.alias_ix[a] for a in q]
        self.queue_len = np.array([len(q) for q in queues])
        jitter = rng.uniform(0.7, 1.4, size=(len(routes), 2))
        self.in_median = np.array([TIER_SHAPE[min(t, 3)][0] for t in self.min_tier]) * jitter[:, 0]
        self.out_median = np.array([TIER_SHAPE[min(t, 3)][1] for t in self.min_tier]) * jitter[:, 1]
        self.prompt_pool = [np.array([hashlib.sha256(f"{seed}:{i}:{k}".encode()).hexdigest() for k in range(5000)])
                            for i in self.intents]

        # Aliases: latency shape, output cap, incident membership, cost per token probed from Rates.cost.
        shape = lambda s: TIER_SHAPE[min(s.tier, 3)]  # noqa: E731
        self.is_tool = np.array([s.is_tool for s in self.specs])
        self.tier = np.array([s.tier for s in self.specs])
        self.timeout_ms = np.array([s.timeout_s * 1000 for s in self.specs])
        self.out_cap = np.array([s.max_output_tokens or 10**6 for s in self.specs])
        self.ttft = np.array([0.3 if s.is_tool else shape(s)[2] for s in self.specs])
        self.tps = np.array([1e9 if s.is_tool else shape(s)[3] for s in self.specs])
        self.outage = np.array([not s.is_tool and s.effective_boundary == "vendor"
                                and s.effective_vendor == sc.outage_vendor for s in self.specs])
        self.coef = np.zeros((len(self.specs), 5))  # USD per token: fresh input, cache read, cache write, output, reasoning
        self.priced = np.ones(len(self.specs), bool)
        self.caches, self.cache_writes, self.reasons = (np.zeros(len(self.specs), bool) for _ in range(3))
        self.threshold = 120_000
        for i, s in enumerate(self.specs):
            rates = book.rates_for(s)
            if rates is None:
                self.priced[i] = False
                continue
            cost = lambda **u: rates.cost(Usage(**u))[0]  # noqa: E731
            self.coef[i] = (cost(input_tokens=1), cost(input_tokens=1, cache_read_tokens=1),
                            cost(input_tokens=1, cache_write_tokens=1), cost(output_tokens=1),
                            cost(output_tokens=1, reasoning_tokens=1))
            self.caches[i] = rates.cache_read is not None
            self.cache_writes[i] = rates.cache_write is not None
            self.reasons[i] = rates.reasoning is not None
            for threshold, _ in rates.tiers:  # stay below tiered pricing: the coefficients are flat-rate
                self.threshold = min(self.threshold, threshold)
        self.base_price_version = book.version
        self.price_version = f"{book.version}+{sc.price_alias}*{sc.price_factor:g}@{self.day(sc.price_day)}"

    def day(self, d: int) -> str:
        return (self.start + timedelta(days=d)).isoformat()

    def names(self, values: list) -> dict[int, Any]:
        return dict(enumerate(values))

    def traffic(self, seed: int) -> np.ndarray:
        """Expected requests per (day, team, intent): weekly pattern, slow growth, the runaway team."""
        rng = np.random.default_rng([seed, 2])
        sc, w = self.sc, np.empty((self.days, *self.team_intent.shape))
        runaway = (self.teams.index(sc.runaway_team), self.intents.index(sc.runaway_intent))
        for d in range(self.days):
            weekday = {5: 0.35, 6: 0.3}.get((self.start + timedelta(days=d)).weekday(), 1.0)
            w[d] = self.team_intent * weekday * (1 + 0.25 * d / max(1, self.days - 1)) * rng.lognormal(0, 0.05)
            if d >= sc.runaway_day:
                w[d][runaway] *= sc.runaway_volume
        return w


# --- one day -------------------------------------------------------------------------------------


def _simulate_day(world: _World, d: int, n: int, weights: np.ndarray, seed: int):
    """One day of ``n`` records as a DataFrame whose columns are the log's fields, in order."""
    import polars as pl

    sc, rng = world.sc, np.random.default_rng([seed, 3, d])
    T, R = weights.shape
    cell = rng.choice(T * R, size=n, p=(weights / weights.sum()).ravel())
    team, route = cell // R, cell % R
    secs = np.empty(n)
    for t in range(T):
        m = team == t
        secs[m] = rng.choice(24, size=m.sum(), p=world.hour_p[t]) * 3600.0
    secs += rng.uniform(0, 3600, n)
    order = np.argsort(secs, kind="stable")
    team, route, secs = team[order], route[order], secs[order]
    hour = secs / 3600

    # What each request asks for.
    runaway = (d >= sc.runaway_day) & (team == world.teams.index(sc.runaway_team)) \
        & (route == world.intents.index(sc.runaway_intent))
    in_tok = rng.lognormal(np.log(world.in_median[route]), 0.6) * np.where(runaway, sc.runaway_input, 1.0)
    in_tok = np.clip(in_tok, 20, world.threshold).astype(np.int64)
    out_want = np.clip(rng.lognormal(np.log(world.out_median[route]), 0.7), 1, 16_000).astype(np.int64)
    cache_frac = np.where(rng.random(n) < 0.3, rng.uniform(0.3, 0.9, n), 0.0)
    write_frac = np.where(rng.random(n) < 0.05, rng.uniform(0.1, 0.3, n), 0.0)

    # Incidents.
    o0, o1 = sc.outage_hours
    outage_on = (d == sc.outage_day) & (hour >= o0) & (hour < o1)
    outage_timeouts = outage_on & (hour < o0 + 0.25 * (o1 - o0))  # first it hangs, then it answers 503
    storm_on = (d == sc.storm_day) & (hour >= sc.storm_hours[0]) & (hour < sc.storm_hours[1])
    storm = world.alias_ix[sc.storm_alias]
    storm_route = world.intents.index(next(i for i, r in world.policy.routes.items() if r.primary == sc.storm_alias))
    forced = np.zeros(n, bool)  # during the storm, a few requests find every candidate above the floor failing
    if d == sc.storm_day and world.policy.routes[world.intents[storm_route]].on_exhausted == "degrade":
        pool = np.flatnonzero(storm_on & (route == storm_route))
        pool = pool if pool.size >= 3 else np.flatnonzero(route == storm_route)
        forced[rng.choice(pool, size=min(5, pool.size), replace=False)] = True
    creep = 1 + (sc.creep_factor - 1) * np.clip((d - sc.creep_day) / max(1, world.days - 1 - sc.creep_day), 0, 1)
    price = np.ones(len(world.aliases))
    if d >= sc.price_day:
        price[world.alias_ix[sc.price_alias]] = sc.price_factor

    # Walk each request's queue, one position at a time, as the router does.
    K = {k: i for i, k in enumerate(KIND_NAMES)}
    retryable = np.array([v[2] for v in KINDS.values()])
    active, served = np.ones(n, bool), np.full(n, -1)
    verify_failed, last_kind = np.zeros(n, bool), np.full(n, len(KIND_NAMES))  # default: no_eligible_route
    att: dict[str, list[np.ndarray]] = {}
    skips: dict[str, list[np.ndarray]] = {"req": [], "pos": [], "alias": []}

    def add(store: dict, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            store.setdefault(k, []).append(v)

    for k in range(world.queue.shape[1]):
        idx = np.flatnonzero(active & (world.queue[route, k] >= 0))
        c = world.queue[route[idx], k]
        circuit = world.outage[c] & outage_on[idx] & (rng.random(idx.size) < 0.9)  # the breaker is mostly open
        add(skips, req=idx[circuit], pos=np.full(circuit.sum(), k), alias=c[circuit])
        idx, c = idx[~circuit], c[~circuit]
        down = world.outage[c] & outage_on[idx]
        stormy = (c == storm) & storm_on[idx]
        forced_fail = forced[idx] & (world.tier[c] >= world.min_tier[route[idx]])
        p_fail = np.where(world.is_tool[c], 0.0, BASE_FAIL) + stormy * sc.storm_rate
        fail = (rng.random(idx.size) < p_fail) | down | forced_fail
        kind = np.where(fail, rng.choice(len(KIND_NAMES), size=idx.size, p=BASE_KIND_P), -1)
        kind = np.where(fail & stormy, K["rate_limited"], np.where(fail & forced_fail, K["server_error"], kind))
        kind = np.where(fail & down, np.where(outage_timeouts[idx], K["timeout"], K["server_error"]), kind)
        last = k == world.queue_len[route[idx]] - 1
        vfail = ~fail & world.verify[route[idx]] & (rng.random(idx.size) < VERIFY_FAIL)
        escalate = vfail & ~last  # a failed check moves on to the next candidate (cascade)
        out = np.minimum(out_want[idx], world.out_cap[c])
        lat = (world.ttft[c] * rng.lognormal(0, 0.35, idx.size) + out / world.tps[c] * 1000) \
            * np.where(c == world.alias_ix[sc.creep_alias], creep, 1.0)
        for name, (_, _, _, typical, _) in KINDS.items():
            m = kind == K[name]
            lat[m] = world.timeout_ms[c[m]] * rng.uniform(1.0, 1.02, m.sum()) if typical is None \
                else typical * rng.lognormal(0, 0.4, m.sum())
        billed = ~fail & ~world.is_tool[c]  # a failed call, or a local Python tool, reports no usage
        add(att, req=idx, pos=np.full(idx.size, k), alias=c, kind=kind, escalate=escalate,
            latency=np.round(lat, 3), inp=np.where(billed, in_tok[idx], 0), out=np.where(billed, out, 0),
            read=np.where(billed & world.caches[c], (in_tok[idx] * cache_frac[idx]).astype(np.int64), 0),
            write=np.where(billed & world.cache_writes[c], (in_tok[idx] * write_frac[idx]).astype(np.int64), 0),
            reason=np.where(billed & world.reasons[c], (out * 0.3).astype(np.int64), 0),
            retry_after=np.where(kind == K["rate_limited"], np.round(rng.uniform(3, 30, idx.size), 1), np.nan))
        done = ~fail & ~escalate
        served[idx[done]] = c[done]
        verify_failed[idx[done & vfail]] = True
        last_kind[idx[fail]] = kind[fail]
        stop = done | (fail & ~retryable[np.maximum(kind, 0)])
        active[idx[stop]] = False

    a = {k: np.concatenate(v) for k, v in att.items()}
    order = np.lexsort((a["pos"], a["req"]))
    a = {k: v[order] for k, v in a.items()}
    al, kind = a["alias"], a["kind"]
    fresh = np.maximum(a["inp"] - a["read"] - a["write"], 0)
    cost = (fresh * world.coef[al, 0] + a["read"] * world.coef[al, 1] + a["write"] * world.coef[al, 2]
            + (a["out"] - a["reason"]) * world.coef[al, 3] + a["reason"] * world.coef[al, 4]) * price[al]
    kinds = pl.Series(kind)
    err = lambda i, dtype: kinds.replace_strict({K[k]: v[i] for k, v in KINDS.items()}, default=None,  # noqa: E731
                                                return_dtype=dtype)
    alias_col = lambda values, ix: pl.Series(ix).replace_strict(world.names(values), default=None,  # noqa: E731
                                                                return_dtype=pl.String)
    vendors = [s.effective_vendor for s in world.specs]
    attempts = pl.DataFrame({
        "_req": a["req"],
        "alias": alias_col(world.aliases, al),
        "model": alias_col([s.target for s in world.specs], al),
        "provider": alias_col([s.provider_prefix for s in world.specs], al),
        "region": alias_col([s.region for s in world.specs], al),
        "outcome": kinds.replace_strict({**{K[k]: k for k in KINDS}, -1: "ok"}, return_dtype=pl.String),
        "error_class": err(0, pl.String),
        "status": err(1, pl.Int64),
        "retryable": err(2, pl.Boolean),
        "retry_after_s": pl.Series(a["retry_after"]).fill_nan(None),
        "latency_ms": a["latency"],
        "input_tokens": a["inp"], "output_tokens": a["out"], "cache_read_tokens": a["read"],
        "cache_write_tokens": a["write"], "reasoning_tokens": a["reason"],
        "cost_usd": pl.Series(np.where(world.priced[al], cost, np.nan)).fill_nan(None),
        "unpriced": ~world.priced[al],
        "_vendor": alias_col(vendors, al),
        "_text": err(4, pl.String),
        "_escalate": a["escalate"],
        "_saving": a["read"] * (world.coef[al, 0] - world.coef[al, 1]) * price[al],
    }).with_columns(
        message=pl.format("{}: {} {}", "error_class", "_vendor", "_text"),
        outcome=pl.when("_escalate").then(pl.lit("verify_failed")).otherwise("outcome"),
    )
    per_request = attempts.group_by("_req", maintain_order=True).agg(
        pl.struct([f for f, _ in ATTEMPT_FIELDS]).alias("attempts"),
        pl.len().cast(pl.Int64).alias("attempt_count"),
        (pl.col("outcome") != "ok").sum().cast(pl.Int64).alias("failed_attempt_count"),
        *(pl.col(src).sum().alias(dst) for src, dst in (
            ("input_tokens", "gen_ai.usage.input_tokens"), ("output_tokens", "gen_ai.usage.output_tokens"),
            ("cache_read_tokens", "usage.cache_read_tokens"), ("cache_write_tokens", "usage.cache_write_tokens"),
            ("reasoning_tokens", "usage.reasoning_tokens"))),
        pl.col("cost_usd").sum().round(12).alias("cost_usd"),
        pl.col("cost_usd").filter(pl.col("outcome") != "ok").sum().round(12).alias("failed_cost_usd"),
        pl.col("_saving").sum().round(12).alias("cache_savings_usd"),
        pl.col("unpriced").any().alias("unpriced"),
        pl.col("latency_ms").sum().alias("_attempts_ms"),
    )

    # Skipped candidates: circuit-open ones (found in the router's first pass), then those below the floor.
    s = {k: np.concatenate(v) for k, v in skips.items()}
    skipped = pl.DataFrame({"_req": s["req"], "_order": s["pos"], "alias": alias_col(world.aliases, s["alias"]),
                            "reason": pl.Series(["circuit_open"] * s["req"].size, dtype=pl.String),
                            "detail": np.round(rng.uniform(0.5, 30, s["req"].size), 1)},
                           schema_overrides={"_req": pl.Int64, "_order": pl.Int64}
                           ).with_columns(detail=pl.format("cooling down for {}s more", "detail"))
    static = [(r, 100 + j, alias, detail) for r in range(R) for j, (alias, detail) in enumerate(world.below_skips[r])]
    if static:
        floor = pl.DataFrame(static, schema={"_route": pl.Int64, "_order": pl.Int64, "alias": pl.String,
                                             "detail": pl.String}, orient="row")
        floor = (pl.DataFrame({"_req": np.arange(n), "_route": route}).join(floor, on="_route")
                 .with_columns(reason=pl.lit("below_floor")).select(skipped.columns))
        skipped = pl.concat([skipped, floor])
    skipped = skipped.sort("_req", "_order").group_by("_req", maintain_order=True).agg(
        pl.struct([f for f, _ in SKIP_FIELDS]).alias("skipped"))

    # The records.
    ok = served >= 0
    served_or_none = np.where(ok, served, -1)
    tier_served = np.where(ok, world.tier[np.maximum(served, 0)], -1)
    hex_ids = lambda width: pl.Series(np.frombuffer(  # noqa: E731
        np.concatenate([rng.integers(0, 256, (n, width - 1), dtype=np.uint8),
                        rng.integers(1, 256, (n, 1), dtype=np.uint8)], axis=1).tobytes(),  # no trailing NUL
        dtype=f"S{width}")).bin.encode("hex")
    sensitivity = world.vendor_labels[rng.integers(0, 4, n) % len(world.vendor_labels)]
    zipf = np.minimum(rng.zipf(1.4, n), len(world.prompt_pool[0])) - 1
    prompt_hash = np.empty(n, dtype=object)
    for r in range(R):
        m = route == r
        prompt_hash[m] = world.prompt_pool[r][zipf[m]]
    day0 = datetime.fromisoformat(world.day(d)).replace(tzinfo=timezone.utc)
    records = pl.DataFrame({
        "_req": np.arange(n),
        "schema_version": np.ones(n, np.int64),
        "request_id": hex_ids(16),
        "timestamp": pl.Series(int(day0.timestamp() * 1e6) + (secs * 1e6).astype(np.int64))
        .cast(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        "gen_ai.operation.name": pl.Series(["chat"] * n, dtype=pl.String),
        "gen_ai.request.model": alias_col([s.target for s in world.specs], world.first[route]),
        "gen_ai.response.model": alias_col([s.tool if s.is_tool else s.model.split("/", 1)[-1] for s in world.specs],
                                           served_or_none),
        "gen_ai.provider.name": alias_col([s.provider_prefix for s in world.specs], served_or_none),
        "intent": alias_col(world.intents, route),
        "team": alias_col(world.teams, team),
        "sensitivity": pl.Series(np.where(world.local[route], world.local_label, sensitivity).tolist(),
                                 dtype=pl.String),
        "boundary": np.where(world.local[route], "local", "none"),
        "outcome": np.where(ok, "served", "failed"),
        "error_kind": pl.Series(np.where(ok, len(KIND_NAMES) + 1, last_kind)).replace_strict(
            world.names([*KIND_NAMES, "no_eligible_route"]), default=None, return_dtype=pl.String),
        "requested_alias": alias_col(world.aliases, world.first[route]),
        "served_alias": alias_col(world.aliases, served_or_none),
        "served_tier": pl.Series(tier_served).replace(-1, None),
        "min_tier": world.min_tier[route],
        "fallback_used": ok & (served != world.first[route]),
        "degraded": ok & (tier_served < world.min_tier[route]),
        "verification": np.where(world.verify[route] & ok, np.where(verify_failed, "fail", "pass"), "skipped"),
        "stream": rng.random(n) < 0.2,
        "prompt_hash": pl.Series(prompt_hash.tolist(), dtype=pl.String),
        "prompt_tokens": in_tok,
        "output_hash": hex_ids(32).zip_with(pl.Series(ok), pl.Series([None] * n, dtype=pl.String)),
        "_overhead_ms": rng.lognormal(np.log(3.0), 0.4, n),
    })
    zero = lambda col: pl.col(col).fill_null(0)  # noqa: E731
    records = (records.join(per_request, on="_req", how="left").join(skipped, on="_req", how="left")
               .with_columns(
        pl.col("attempts").fill_null(pl.lit([], dtype=per_request.schema["attempts"])),
        pl.col("skipped").fill_null(pl.lit([], dtype=skipped.schema["skipped"])),
        zero("attempt_count"), zero("failed_attempt_count"), zero("gen_ai.usage.input_tokens"), zero("gen_ai.usage.output_tokens"),
        zero("usage.cache_read_tokens"), zero("usage.cache_write_tokens"), zero("usage.reasoning_tokens"),
        pl.when(pl.col("unpriced")).then(None).otherwise(zero("cost_usd")).alias("cost_usd"),
        zero("failed_cost_usd"), zero("cache_savings_usd"), pl.col("unpriced").fill_null(False),
        (zero("_attempts_ms") + pl.col("_overhead_ms")).round(3).alias("latency_ms"),
        route_id=pl.col("intent"),
        policy_version=pl.lit(world.policy.version),
        price_version=pl.lit(world.price_version if d >= sc.price_day else world.base_price_version),
        prompt=pl.lit(None, pl.String), output=pl.lit(None, pl.String), shadow_of=pl.lit(None, pl.String),
        source=pl.lit("synth"), model_mismatch=pl.lit(False), warnings=pl.lit(None, pl.String),
        router_name=pl.lit(None, pl.String), router_version=pl.lit(None, pl.String),
        router_score=pl.lit(None, pl.Float64), state=pl.lit(None, pl.String), extra=pl.lit(None, pl.String),
        # synthetic traffic is plain chat: no tools, no response format, no conversation
        **{name: pl.lit(None, pl.String) for name in ("conversation_id", "tools_offered", "tools_called",
                                                       "response_format", "earlier_tool_calls_alias",
                                                       "earlier_tool_calls_provider")},
        finish_reason=pl.when(pl.col("outcome") == "served").then(pl.lit("stop")),
        conversation_switched=pl.lit(False),
    ))
    return records.select(FIELD_NAMES)


# --- the run -------------------------------------------------------------------------------------


def synthesize(log_dir: str | os.PathLike, days: int = 90, requests: int = 100_000, seed: int = 0,
               policy: str | os.PathLike | Policy = DEFAULT_POLICY, *, end: date | str | None = None,
               incidents: Incidents | None = None, replace: bool = False, progress: bool = False) -> SynthResult:
    """Write ``requests`` synthetic records over ``days`` UTC days ending ``end`` (default: yesterday).

    Each day goes through ``RouteLogWriter.write_lines`` and is then compacted to Parquet.  The
    ground truth of what was injected is written to ``log_dir/_synth_truth.json``.  A directory
    that already holds a log is refused, unless it is a synthetic one and ``replace`` is set.
    """
    import polars as pl

    if days < 1 or requests < 1:
        raise ValueError(f"days and requests must each be at least 1 (days {days}, requests {requests})")
    root = Path(log_dir)
    truth_path = root / TRUTH_NAME
    existing = sorted(root.glob("date=*")) if root.is_dir() else []
    if existing:
        if not (replace and truth_path.exists()):
            raise FileExistsError(f"{root} already holds a route log ({len(existing)} days); synthesize into an "
                                  f"empty directory" + (" (or pass replace to overwrite this synthetic one)"
                                                        if truth_path.exists() else ""))
        for part in existing:
            shutil.rmtree(part)
        truth_path.unlink()
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    book = PriceBook.load()
    last = parse_day(end, "end") or datetime.now(timezone.utc).date() - timedelta(days=1)
    start = last - timedelta(days=days - 1)
    sc = incidents or default_incidents(pol, days)
    world = _World(pol, book, sc, seed, start, days)
    traffic = world.traffic(seed)
    per_day = np.random.default_rng([seed, 4]).multinomial(requests, traffic.sum(axis=(1, 2)) / traffic.sum())

    writer = RouteLogWriter(root)
    totals = {"records": 0, "served": 0, "failed": 0, "fallback_used": 0, "degraded": 0, "cost_usd": 0.0}
    degraded_days: dict[str, int] = {}
    day_range = range(days)
    if progress:
        from tqdm import tqdm
        day_range = tqdm(day_range, desc="synth", unit="day")
    try:
        for d in day_range:
            if per_day[d] == 0:
                continue
            df = _simulate_day(world, d, int(per_day[d]), traffic[d], seed)
            writer.write_lines(world.day(d), df.write_ndjson().encode().splitlines())
            compact(root, days=[world.day(d)])
            counts = df.select(records=pl.len(), served=(pl.col("outcome") == "served").sum(),
                               failed=(pl.col("outcome") == "failed").sum(), fallback_used=pl.col("fallback_used").sum(),
                               degraded=pl.col("degraded").sum(), cost_usd=pl.col("cost_usd").sum()).row(0, named=True)
            for k, v in counts.items():
                totals[k] += v or 0
            if counts["degraded"]:
                degraded_days[world.day(d)] = counts["degraded"]
    finally:
        writer.close()

    text = json.dumps(_truth(world, pol, seed, requests, totals, degraded_days), indent=2)
    tmp = truth_path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.rename(truth_path)
    return SynthResult(root, truth_path, json.loads(text))


def _truth(world: _World, policy: Policy, seed: int, requests: int, totals: dict, degraded_days: dict) -> dict:
    sc, spec = world.sc, policy.models
    at = lambda d, h: (datetime.fromisoformat(world.day(d)).replace(tzinfo=timezone.utc)  # noqa: E731
                       + timedelta(hours=h)).isoformat().replace("+00:00", "Z")
    model = lambda alias: spec[alias].target  # noqa: E731
    return {
        "generator": "toolkit.synth", "seed": seed, "days": world.days, "requests": requests,
        "start": world.day(0), "end": world.day(world.days - 1),
        "policy": policy.path, "policy_version": policy.version,
        "price_version": world.base_price_version, "teams": world.teams, "intents": world.intents,
        "incidents": asdict(sc),
        "injected": {
            "vendor_outage": {"vendor": sc.outage_vendor, "date": world.day(sc.outage_day),
                              "start": at(sc.outage_day, sc.outage_hours[0]), "end": at(sc.outage_day, sc.outage_hours[1]),
                              "aliases": [a for a, o in zip(world.aliases, world.outage) if o],
                              "models": [model(a) for a, o in zip(world.aliases, world.outage) if o],
                              "kinds": ["timeout", "server_error"], "circuit_open_skips": True},
            "rate_limit_storm": {"alias": sc.storm_alias, "model": model(sc.storm_alias),
                                 "date": world.day(sc.storm_day), "start": at(sc.storm_day, sc.storm_hours[0]),
                                 "end": at(sc.storm_day, sc.storm_hours[1]), "rate": sc.storm_rate,
                                 "kind": "rate_limited"},
            "degraded_serves": {"route": next(i for i, r in policy.routes.items() if r.primary == sc.storm_alias),
                                "by_date": degraded_days, "count": sum(degraded_days.values())},
            "runaway_team": {"team": sc.runaway_team, "intent": sc.runaway_intent, "from": world.day(sc.runaway_day),
                             "volume_factor": sc.runaway_volume, "input_tokens_factor": sc.runaway_input},
            "latency_creep": {"alias": sc.creep_alias, "model": model(sc.creep_alias),
                              "from": world.day(sc.creep_day), "to": world.day(world.days - 1),
                              "factor_at_end": sc.creep_factor},
            "price_change": {"alias": sc.price_alias, "model": model(sc.price_alias), "from": world.day(sc.price_day),
                             "factor": sc.price_factor, "price_version": world.price_version},
        },
        "totals": {**totals, "cost_usd": round(totals["cost_usd"], 6)},
    }
