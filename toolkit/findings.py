"""Plain-language findings for the top of each dashboard, read from rollups (never raw records).

Each detector returns a list of :class:`Finding`; ``spend_findings``, ``latency_findings`` and ``quality_findings``
bundle them per dashboard and ``to_markdown`` writes the list a reviewer reads first.  What each detector calls
unusual, in plain words (the thresholds are arguments):

- spend jump: a team's or model's spend on a day is at least ``ratio`` x its median of the previous ``window``
  days, and the jump is at least ``min_share`` of a typical day's total spend (so a $0.02 team doubling is no news);
- outage / rate-limit storm: hours in which most requests sent to a model failed or had to fall back, far beyond
  chance at that model's usual hourly rate; contiguous hours make one incident, told apart by what it left in the
  rollups (final rate-limit errors, an open circuit, or failed attempts with the circuit closed: see ``incidents``);
- price change: a model's cost per token (single-attempt serves only, so fallbacks and retries do not blur it)
  steps by at least ``min_change`` between the week before a day and the week from it, and stays there;
- latency creep: a model's weekly p95 trends up (Theil-Sen slope, most week pairs rising) by at least
  ``min_rise`` over the period, read from weeks of at least ``min_requests`` (100: the p95 of a few dozen requests
  is about their largest one, and noise rises by chance);
- budget scope missed: spend recorded under another spelling of a budget's scope (team "Support" or "support "
  for a budget of team "support": the Router matches a scope exactly, so that spend escapes the budget);
- degraded serves and lower-tier fallbacks: every one counted, and zero said out loud;
- model mismatch: a provider reported serving another model than the one asked for (e.g. a cheaper one), per alias.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import combinations
from math import exp, lgamma, log
from statistics import median
from typing import Any, Iterable

import polars as pl

from .dashboards import BUDGET_SCOPES, NONE, Frame, Period, budget_status, degraded_serves, latency, \
    lower_tier_fallbacks, model_mismatches, production, spend, within
from .rollups import total
from .tables import markdown_money

SEVERITY_ORDER = {"alert": 0, "warn": 1, "info": 2}
LABEL = {"alert": "**Alert**", "warn": "**Warning**", "info": "Note"}


@dataclass(frozen=True)
class Finding:
    kind: str                       # spend_jump, outage, rate_limit_storm, price_change, latency_creep, ...
    severity: str                   # alert | warn | info
    subject: str                    # what it is about: "team research", "model gpt-4.1"
    message: str                    # the sentence a reviewer reads
    start: date | datetime | None = None
    end: date | datetime | None = None
    value: float | None = None      # the unusual number (spend, rate, price, p95)
    baseline: float | None = None   # what it is compared with

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _sorted(found: Iterable[Finding]) -> list[Finding]:
    return sorted(found, key=lambda f: (SEVERITY_ORDER[f.severity], str(f.start or ""), f.kind, f.subject))


def to_markdown(found: list[Finding], title: str = "Findings") -> str:
    if not found:
        return f"**{title}:** nothing unusual in the period."
    lines = [f"**{title}** ({len(found)})", ""]
    lines += [f"- {LABEL[f.severity]}: {markdown_money(f.message)}" for f in found]
    return "\n".join(lines)


def to_frame(found: list[Finding]) -> pl.DataFrame:
    schema = {"kind": pl.String, "severity": pl.String, "subject": pl.String, "message": pl.String,
              "start": pl.String, "end": pl.String, "value": pl.Float64, "baseline": pl.Float64}
    rows = [{**f.as_dict(), "start": str(f.start) if f.start else None, "end": str(f.end) if f.end else None}
            for f in found]
    return pl.DataFrame(rows, schema=schema)


def _usd(x: float) -> str:
    return f"${x:,.2f}" if abs(x) >= 0.995 else f"${x:,.4f}"


def _runs(days: list[Any], gap: Any) -> list[tuple[Any, Any]]:
    """Group sorted times (or day indexes) into runs whose members are at most ``gap`` apart."""
    out: list[list] = []
    for d in days:
        if out and d - out[-1][1] <= gap:
            out[-1][1] = d
        else:
            out.append([d, d])
    return [(a, b) for a, b in out]


# --- spend --------------------------------------------------------------------------------------------------------

def spend_jumps(rollups: Frame, by: str = "team", window: int = 7, ratio: float = 2.0,
                min_share: float = 0.05) -> list[Finding]:
    """Days on which a group's spend jumped against its own trailing median (see module docstring)."""
    daily = spend(rollups, by=by, grain="day").select(pl.col("period").alias("date"), by, cost="cost_usd")
    if daily.is_empty():
        return []
    days = pl.date_range(daily["date"].min(), daily["date"].max(), "1d", eager=True).alias("date")
    grid = (pl.DataFrame(days).join(daily.select(by).unique(), how="cross")
            .join(daily, on=["date", by], how="left").with_columns(pl.col("cost").fill_null(0.0)).sort(by, "date"))
    floor = min_share * float(grid.group_by("date").agg(pl.col("cost").sum())["cost"].median())
    grid = grid.with_columns(base=pl.col("cost").shift(1).rolling_median(window, min_samples=window).over(by))
    hits = grid.filter(pl.col("base").is_not_null() & (pl.col("cost") >= ratio * pl.col("base"))
                       & (pl.col("cost") - pl.col("base") >= floor) & (pl.col("cost") > 0))
    found = []
    for (group,), g in hits.group_by(by, maintain_order=True):
        for start, end in _runs(g["date"].to_list(), timedelta(days=1)):
            first = g.filter(pl.col("date") == start).row(0, named=True)
            run = g.filter(pl.col("date").is_between(start, end))
            peak = run.sort("cost", descending=True).row(0, named=True)
            times = "on " + str(start) if start == end else f"from {start} to {end} ({(end - start).days + 1} days)"
            base = first["base"]
            jump = f"{first['cost'] / base:.1f}x" if base > 0 else "up from nothing"
            found.append(Finding(
                "spend_jump", "alert" if peak["cost"] >= 3 * max(base, 1e-12) else "warn", f"{by} {group}",
                f"Spend jump: {by} **{group}** spent {_usd(first['cost'])} on {start}, {jump} its {window}-day median "
                f"of {_usd(base)}/day; high {times}, peaking at {_usd(peak['cost'])} on {peak['date']}.",
                start, end, first["cost"], base))
    return found


def budget_alerts(rollups: Frame, budgets: Iterable[Any]) -> list[Finding]:
    """The alert thresholds each budget crossed in its latest period."""
    _, alerts = budget_status(rollups, budgets)
    if alerts.is_empty():
        return []
    latest = alerts.filter(pl.col("period_start") == pl.col("period_start").max().over("budget"))
    found = []
    for (name,), g in latest.group_by("budget", maintain_order=True):
        top = g.sort("threshold").row(-1, named=True)
        over = top["threshold"] >= 1.0
        found.append(Finding(
            "budget", "alert" if over else "warn", f"budget {name}",
            f"Budget **{name}** reached {top['threshold']:.0%} of its {_usd(top['limit_usd'])} limit on {top['date']} "
            f"({_usd(top['spent_usd'])} spent in the period starting {top['period_start']}).",
            top["date"], top["date"], top["spent_usd"], top["limit_usd"]))
    return found


def budget_scope_misses(rollups: Frame, budgets: Iterable[Any]) -> list[Finding]:
    """Spend under another spelling of a budget's scope value (case, spaces, ``-``, ``_`` and ``.`` aside): one
    warning per spelling, the largest spend first."""
    def spelling(expr: pl.Expr) -> pl.Expr:
        return expr.str.to_lowercase().str.replace_all(r"[\s_.\-]+", "")

    found = []
    for b in budgets:
        b = b if isinstance(b, dict) else b.model_dump()
        for dim, value in (b.get("scope") or {}).items():
            col = pl.col(BUDGET_SCOPES[dim])
            missed = (production(rollups).filter((col != value) & (spelling(col) == spelling(pl.lit(value))))
                      .group_by(col.alias("spelt")).agg(total("cost_usd").alias("usd"), pl.col("requests").sum(),
                                                        pl.col("date").min().alias("first"),
                                                        pl.col("date").max().alias("last"))
                      .sort("usd", "spelt", descending=[True, False]).collect())
            for m in missed.iter_rows(named=True):
                found.append(Finding(
                    "budget_scope", "warn", f"budget {b['name']}",
                    f"{m['requests']:,} requests recorded as {dim} {m['spelt']!r} ({_usd(m['usd'])}, {m['first']} .. "
                    f"{m['last']}) escape budget **{b['name']}**, scoped to {dim} {value!r}: the Router matches a "
                    "scope exactly (fix the caller's spelling).", m["first"], m["last"], m["usd"]))
    return found


def price_changes(rollups: Frame, window: int = 7, min_change: float = 0.10) -> list[Finding]:
    """Step changes in a model's cost per token (see module docstring)."""
    clean = (production(rollups).filter((pl.col("outcome") == "served") & ~pl.col("fallback_used")
                                        & (pl.col("attempts") == pl.col("requests"))
                                        & (pl.col("unpriced_requests") == 0))
             .group_by("served_model", "date")
             .agg(total("cost_usd").alias("cost"), tokens=(pl.col("input_tokens") + pl.col("output_tokens")).sum())
             .filter(pl.col("tokens") > 0)
             .with_columns(per_mtok=pl.col("cost") / pl.col("tokens") * 1e6)
             .sort("served_model", "date").collect())
    found = []
    for (model,), g in clean.group_by("served_model", maintain_order=True):
        days, price = g["date"].to_list(), g["per_mtok"].to_list()
        logp = [log(max(p, 1e-12)) for p in price]

        def step(i: int) -> tuple[float, float]:  # (median before, median after) of the windows around day i
            return median(price[i - window:i]), median(price[i:i + window])

        def misfit(i: int) -> float:  # L1 distance of log prices to their window medians: lowest at the true day
            a, b = logp[i - window:i], logp[i:i + window]
            return sum(abs(x - median(a)) for x in a) + sum(abs(x - median(b)) for x in b)

        # days where the week after differs from the week before; each cluster of them is one change, dated at
        # the split that fits two flat price levels best (a median step smears over neighbouring days)
        big = [i for i in range(window, len(days) - window + 1)
               if min(step(i)) > 0 and abs(step(i)[1] / step(i)[0] - 1) >= min_change]
        for cluster in _runs(big, window):
            i = min(range(cluster[0], cluster[1] + 1), key=misfit)
            before, after = step(i)
            found.append(Finding(
                "price_change", "warn", f"model {model}",
                f"Price change: **{model}** cost {_usd(after)} per million tokens from {days[i]}, "
                f"{after / before - 1:+.0%} vs {_usd(before)} the week before (same traffic, single-attempt serves).",
                days[i], days[i], after, before))
    return found


# --- reliability and latency --------------------------------------------------------------------------------------

STORM_KINDS = ("rate_limited", "overloaded")


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how surprising k bad requests out of n are at the usual rate p."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    return min(1.0, sum(exp(lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) + i * log(p) + (n - i) * log(1 - p))
                        for i in range(k, n + 1)))


def incidents(rollups: Frame, min_rate: float = 0.5, alpha: float = 1e-4, min_requests: int = 3,
              floor_rate: float = 0.01, gap_hours: int = 1) -> list[Finding]:
    """Hours in which most requests sent to a model failed or fell back, far beyond chance at its usual hourly rate
    (binomial tail below ``alpha``); contiguous hours make one incident.

    Rollups keep the kind of a request's final failure only, so the kind of incident is read from what it left:
    final failures mostly rate limits -> rate-limit storm; the model's circuit open for a quarter or more of its
    requests (consecutive hard failures) -> outage; failed attempts with the circuit never opening (a partial
    failure rate, retried and fallen back) -> rate-limit storm; anything else -> outage."""
    failed = pl.col("outcome") == "failed"
    n = lambda cond: pl.col("requests").filter(cond).sum()  # noqa: E731
    rows = (production(rollups).filter(pl.col("outcome") != "blocked")
            .select("requested_model", "hour", "requests", "outcome", "fallback_used", "error_kind",
                    "circuit_open_skips", "failed_attempts", "provider", "served_model").collect())
    hourly = (rows.group_by("requested_model", "hour")
              .agg(pl.col("requests").sum(), bad=n(failed | pl.col("fallback_used")), failed=n(failed),
                   storm=n(failed & pl.col("error_kind").is_in(STORM_KINDS)),
                   skips=pl.col("circuit_open_skips").sum(), failed_attempts=pl.col("failed_attempts").sum())
              .with_columns(rate=pl.col("bad") / pl.col("requests"))
              .sort("requested_model", "hour"))
    # each model's provider: the one that served most of its requests as asked
    as_asked = (pl.col("served_model") == pl.col("requested_model")) & pl.col("provider").is_not_null()
    providers = dict(rows.filter(as_asked).group_by("requested_model", "provider").agg(pl.col("requests").sum())
                     .sort("requests", "provider", descending=[True, False])
                     .group_by("requested_model", maintain_order=True).agg(pl.col("provider").first()).iter_rows())
    found = []
    for (model,), g in hourly.group_by("requested_model", maintain_order=True):
        busy = g.filter(pl.col("requests") >= min_requests)
        if busy.is_empty():
            continue
        usual = float(busy["rate"].median())
        p0 = max(usual, floor_rate)
        hits = [r["hour"] for r in busy.filter(pl.col("rate") >= min_rate).iter_rows(named=True)
                if _binom_sf(r["bad"], r["requests"], p0) < alpha]
        provider = providers.get(model)
        for start, end in _runs(hits, timedelta(hours=gap_hours + 1)):
            w = g.filter(pl.col("hour").is_between(start, end))
            total, bad, fails, storm, skips, tries = (int(w[c].sum()) for c in (
                "requests", "bad", "failed", "storm", "skips", "failed_attempts"))
            by_errors = fails and storm >= 0.5 * fails
            if by_errors:
                kind, why = "rate_limit_storm", [f"{storm} of the {fails} final failures were rate limits"]
            elif skips >= 0.25 * total:
                kind, why = "outage", [f"its circuit was open for {skips:,} of them"]
            elif tries and not skips:
                kind, why = "rate_limit_storm", [f"{tries:,} attempts failed but its circuit never opened (partial "
                                                 f"failures, as under rate limiting)"]
            else:
                kind, why = "outage", []
            why.append(f"{fails:,} failed outright" if fails and not by_errors else
                       "" if fails else "fallbacks served every one of them")
            hours = int((end - start) / timedelta(hours=1)) + 1
            who = f"**{model}**" + (f" ({provider})" if provider else "")
            what = "Rate-limit storm" if kind == "rate_limit_storm" else "Outage"
            found.append(Finding(
                kind, "alert", f"model {model}",
                f"{what}: {who} — {bad / total:.0%} of {total:,} requests failed or fell back from "
                f"{start:%Y-%m-%d %H:%M} to {end + timedelta(hours=1):%H:%M} UTC ({hours} h; usually {usual:.0%})"
                + "".join(f"; {w}" for w in why if w) + ".", start, end + timedelta(hours=1), bad / total, usual))
    return found


def _theil_sen(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(slope, intercept, share of point pairs that rise): a trend line one bad week cannot bend."""
    slopes = [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in combinations(zip(xs, ys), 2) if x2 != x1]
    slope = median(slopes)
    intercept = median(y - slope * x for x, y in zip(xs, ys))
    return slope, intercept, sum(s > 0 for s in slopes) / len(slopes)


def latency_creep(rollups: Frame, by: str = "model", min_rise: float = 0.2, min_weeks: int = 4,
                  min_rising: float = 0.7, min_requests: int = 100) -> list[Finding]:
    """Groups whose weekly p95 trends up by at least ``min_rise`` over the period (see module docstring)."""
    weekly = (latency(rollups, by=by, grain="week")
              .filter((pl.col("percentile") == "p95") & (pl.col("requests") >= min_requests))
              .rename({"latency_ms": "p95_ms"}).sort(by, "period"))
    found = []
    for (group,), g in weekly.group_by(by, maintain_order=True):
        if g.height < min_weeks or group == NONE:
            continue
        weeks = [(p - g["period"][0]).days / 7 for p in g["period"]]
        slope, intercept, rising = _theil_sen(weeks, g["p95_ms"].to_list())
        first, last = intercept, intercept + slope * weeks[-1]
        if first <= 0 or rising < min_rising or last / first - 1 < min_rise:
            continue
        found.append(Finding(
            "latency_creep", "warn", f"{by} {group}",
            f"Latency creep: p95 of **{group}** rose from about {first:,.0f} ms to {last:,.0f} ms over "
            f"{len(weeks)} weeks ({slope:+,.0f} ms/week, {last / first - 1:+.0%}) and has not come back.",
            g["period"][0], g["period"][-1], last, first))
    return found


# --- quality --------------------------------------------------------------------------------------------------------

def degraded(rollups: Frame) -> list[Finding]:
    rows = degraded_serves(rollups)
    if rows.is_empty():
        return [Finding("degraded", "info", "degraded serves",
                        "No degraded serves: every answer met its route's quality floor.")]
    per = rows.group_by("route", "alias").agg(pl.col("requests").sum(), pl.col("date").min().alias("first"),
                                              pl.col("date").max().alias("last")).sort("requests", descending=True)
    return [Finding("degraded", "warn", f"route {r['route']}",
                    f"Degraded serves: route **{r['route']}** served {r['requests']:,} requests below its quality "
                    f"floor by {r['alias']} ({r['first']} .. {r['last']}).", r["first"], r["last"],
                    float(r["requests"])) for r in per.iter_rows(named=True)]


def lower_tier(rollups: Frame, policy: Any) -> list[Finding]:
    if policy is None:
        return [Finding("lower_tier_fallback", "info", "lower-tier fallbacks",
                        "Lower-tier fallbacks: not checked (no policy given, so tiers are unknown).")]
    rows = lower_tier_fallbacks(rollups, policy)
    if rows.is_empty():
        return [Finding("lower_tier_fallback", "info", "lower-tier fallbacks",
                        "No fallback served a lower tier than its route's primary.")]
    per = (rows.group_by("route", "primary", "primary_tier", "alias", "served_tier")
           .agg(pl.col("requests").sum(), pl.col("degraded").any(), pl.col("date").min().alias("first"),
                pl.col("date").max().alias("last")).sort("requests", descending=True))
    found = []
    for r in per.iter_rows(named=True):
        tiers = (f"tier {r['primary_tier']} -> {r['served_tier']}" if r["served_tier"] is not None
                 else "tier unknown to the policy")
        found.append(Finding(
            "lower_tier_fallback", "warn", f"route {r['route']}",
            f"Lower-tier fallback: route **{r['route']}** was served by {r['alias']} instead of {r['primary']} "
            f"({tiers}) for {r['requests']:,} requests ({r['first']} .. {r['last']})"
            + (", some of them degraded." if r["degraded"] else "."), r["first"], r["last"], float(r["requests"])))
    return found


def model_mismatch(rollups: Frame) -> list[Finding]:
    rows = model_mismatches(rollups)
    if rows.is_empty():
        return [Finding("model_mismatch", "info", "model mismatches",
                        "No provider reported serving a model other than the one asked for.")]
    found = []
    for (alias,), g in rows.group_by("alias", maintain_order=True):
        n, total = int(g["model_mismatches"].sum()), int(g["requests"].sum())
        others = ", ".join(f"{m} ({k:,})" for m, k in g.filter(pl.col("model_mismatches") > 0)
                           .select("model", "model_mismatches").iter_rows())
        found.append(Finding("model_mismatch", "warn", f"alias {alias}",
                             f"Model mismatch: the provider of **{alias}** reported serving another model than the "
                             f"one asked for in {n:,} of {total:,} served requests ({n / total:.1%}): {others}.",
                             value=float(n), baseline=float(total)))
    return found


def outcome_findings(tables: Any) -> list[Finding]:
    """From ``dashboards.quality_tables``: each drill's verdict, each shadow comparison's, and a missing baseline."""
    found = []
    if tables.baseline is None:
        found.append(Finding("baseline", "info", "baselines", "No baseline yet: run `routekit eval baseline`."))
    for dr in tables.drills:
        t, s = dr.summary.get("totals") or {}, dr.summary
        bad = (t.get("silent_downgrades") or 0) + (t.get("boundary_violations_records") or 0) + \
            (t.get("boundary_violations_sim") or 0)
        found.append(Finding(
            "drill", "alert" if bad or not s.get("ok", True) else "info", f"drill {dr.source}",
            f"Drill {s.get('description') or dr.source}: {t.get('served', 0):,} of {t.get('requests', 0):,} served "
            f"({t.get('served_by_fallback', 0):,} by a fallback, {t.get('degraded', 0):,} degraded), "
            f"{t.get('failed_loudly', 0):,} failed loudly, {t.get('silent_downgrades', 0):,} silent downgrades, "
            f"{(t.get('boundary_violations_records') or 0) + (t.get('boundary_violations_sim') or 0):,} boundary "
            f"violations.", value=float(bad)))
    if tables.shadow is not None:
        for r in tables.shadow.iter_rows(named=True):
            found.append(Finding(
                "shadow", "warn" if r["verdict"] == "switch" else "info", f"intent {r['intent']}",
                f"Shadow {r['intent']}: {r['candidate']} vs {r['production']} — **{r['verdict']}** "
                f"({r.get('reason') or r['metric']}, {r['pairs']:,} pairs).", value=r.get("value")))
    return found


# --- per dashboard ------------------------------------------------------------------------------------------------
# Detectors look at the whole history up to the period's end (a jump needs the days before it); the lists keep
# what touches the period.

def _history(rollups: Frame, period: Period | None) -> pl.LazyFrame:
    return rollups.lazy() if period is None else rollups.lazy().filter(pl.col("date") <= period.until)


def _touching(found: Iterable[Finding], period: Period | None) -> list[Finding]:
    def day(t: Any) -> date:
        return t.date() if isinstance(t, datetime) else t

    return _sorted(x for x in found if period is None or x.end is None or day(x.end) >= period.since)


def spend_findings(rollups: Frame, period: Period | None = None, budgets: Iterable[Any] = ()) -> list[Finding]:
    h = _history(rollups, period)
    now = h if period is None else within(h, period)
    budgets = list(budgets)
    return _touching([*spend_jumps(h, "team"), *spend_jumps(h, "model"), *budget_alerts(now, budgets),
                      *budget_scope_misses(now, budgets), *price_changes(h)], period)


def latency_findings(rollups: Frame, period: Period | None = None, histograms: Frame | None = None) -> list[Finding]:
    """``histograms``: ``dashboards.histograms`` of the same rollups (faster), else read from ``rollups``."""
    h = _history(rollups, period)
    return _touching([*incidents(h), *latency_creep(_history(histograms, period) if histograms is not None else h)],
                     period)


def quality_findings(rollups: Frame, period: Period | None = None, policy: Any = None,
                     tables: Any = None) -> list[Finding]:
    now = rollups.lazy() if period is None else within(rollups, period)
    return _touching([*degraded(now), *lower_tier(now, policy), *model_mismatch(now),
                      *(outcome_findings(tables) if tables else [])], period)
