"""From rollups to chart-ready frames: every number a dashboard shows, computed in polars.

Input is the rollup table of ``toolkit.rollups`` (contract v3: one additive row per hour x team x intent x
route x model x provider x outcome, its latency histogram in the row; or the day grain), as a LazyFrame or
DataFrame; never raw records — but for ``agent_call_failures``, which needs each attempt's verdict (a rollup keeps
none) and reads the route log's records (``toolkit.routelog.scan_log``), only the few columns it needs.  Output is
small DataFrames that ``toolkit.charts`` draws and the notebooks show as tables.

Conventions:
- ``by`` names a dimension: team, intent, route, model (the model that served), requested_model, provider, alias;
  the output column carries that name.  Null keys (nothing served) read ``(none)``.
- ``grain`` is hour, day, week or month; the time column is ``period`` (a Date, or a naive UTC Datetime for hours,
  so a browser in another time zone does not shift the labels).
- Money includes shadow calls (they are paid for); request counts, rates and latency are production only.
- Percentiles are read from summed latency histograms (``rollups.summarize``), never averaged.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

import polars as pl

from .estimate import DAYS_PER_MONTH, Dist, IntentLoad, Scenario, estimate_scenarios
from .rollups import HIST, merge, summarize, total
from .routelog import parse_period

DIMENSIONS = {"team": "team", "intent": "intent", "route": "route_id", "model": "served_model",
              "requested_model": "requested_model", "provider": "provider", "alias": "served_alias"}
GRAINS = ("hour", "day", "week", "month")
HOURLY_DAYS = 2   # a period this short (or shorter) is charted by the hour unless a grain is asked for
HOURLY_HISTORY_DAYS = 28   # counts by the hour reach back the period's length before it, and at least this far
NONE, OTHER = "(none)", "(other)"
PERCENTILES = ("p50", "p95", "p99")
Frame = pl.LazyFrame | pl.DataFrame


@dataclass(frozen=True)
class Period:
    """An inclusive range of UTC days."""

    since: date
    until: date

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @property
    def previous(self) -> "Period":
        """The period of the same length just before this one ("what changed since last period")."""
        return Period(self.since - timedelta(days=self.days), self.since - timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.since} .. {self.until} ({self.days} day{'s' if self.days != 1 else ''})"

    def last(self, days: int) -> "Period":
        """Its last ``days`` days (all of it when shorter): "what changed" over a long history compares the
        latest month with the month before, which the log has, rather than with a span before the log began."""
        return self if self.days <= days else Period(self.until - timedelta(days=days - 1), self.until)


def period_of(rollups: Frame, since: date | str | None = None, until: date | str | None = None) -> Period:
    """The period asked for, open ends filled from the data (first and last day present)."""
    since, until = parse_period(since, until)
    if since is None or until is None:
        first, last = rollups.lazy().select(pl.col("date").min().alias("a"), pl.col("date").max().alias("b")
                                            ).collect().row(0)
        today = date.today()  # an empty log: an empty period today rather than an error
        # (again: an end filled from the data may fall before the one given)
        since, until = parse_period(since or first or today, until or last or today)
    return Period(since, until)  # type: ignore[arg-type]


# --- reading less: two in-memory reductions of the rollups ---------------------------------------------------------
# Every money and rate number needs no histogram, and every latency number needs the histograms but not team,
# intent or provider: two reductions, made once per notebook, keep each scan small (tests/test_dashboards.py checks
# they give the same numbers as the full table).

HISTOGRAM_KEYS = ("date", "route_id", "requested_model", "served_model", "served_alias", "outcome", "fallback_used",
                  "degraded", "is_shadow")


def counts(rollups: Frame) -> pl.DataFrame:
    """The rollups without their latency histograms (every key kept, hour included): enough for every money,
    rate, serve and incident number; a latency function given it fails for want of ``latency_hist``.

    Rows as stored, not merged: a group may have two rows (a record stored in another day's partition), which no
    use minds, as every number is a sum over rows."""
    return rollups.lazy().select(pl.exclude(HIST)).collect()


def histograms(rollups: Frame, hourly: bool = False) -> pl.DataFrame:
    """The latency histograms per day (or hour) x route x model x outcome x flags: enough for ``latency``,
    ``slowest``, ``shadow_vs_production`` and latency findings, by model or route."""
    return merge(rollups, (*HISTOGRAM_KEYS, "hour") if hourly else HISTOGRAM_KEYS).collect()


@dataclass(frozen=True)
class Data:
    """What a dashboard notebook reads: the period and two in-memory reductions of the rollups of the days up to its
    end (spend jumps and incidents compare the period with the days before it)."""

    period: Period
    counts: pl.DataFrame                 # ``counts()`` of the history, per day (per hour when ``grain`` is hour:
                                         # of the period and as long before it, at least HOURLY_HISTORY_DAYS)
    histograms: pl.DataFrame | None      # ``histograms()`` of it (of the period only by the hour), if asked for
    log: str | None = None               # the route log read; None when there was none (the frames are empty)
    looked_in: tuple[str, ...] = ()      # where a log was looked for
    built: str = ""                      # the rollups' fingerprint when read
    grain: str = "day"                   # what the charts are by: as asked, else chosen from the period's length

    @property
    def hours(self) -> pl.DataFrame | pl.LazyFrame:
        """The counts per hour of the period and as long before it, at least ``HOURLY_HISTORY_DAYS`` (incidents
        are found hour by hour): ``counts`` when loaded by the hour, else the hour grain as a LazyFrame, so that a
        query reads only the columns it uses."""
        if "hour" in self.counts.columns:
            return self.counts
        return _hour_history(self.log, self.period).select(pl.exclude(HIST))

    @property
    def quality_dir(self) -> Path | None:
        """``quality/`` beside the log: where ``routekit demo`` writes its shadow, baseline and drill tables."""
        return Path(self.log).parent / "quality" if self.log and "://" not in self.log else None

    @property
    def header(self) -> str:
        """The notebook's first line: which log and period, or that there is no log and how to get one."""
        if self.log:
            return f"**Log** `{self.log}` · **period** {self.period}"
        where = " or ".join(f"`{p}`" for p in self.looked_in)
        return (f"**No route log** at {where}: run `routekit demo` (it writes `demo/routelog`) or "
                f"`routekit log synth --log DIR` and set `log_dir` or `$ROUTEKIT_LOG_DIR`; shown below is what "
                f"needs no log.")

    @property
    def now(self) -> pl.LazyFrame:
        return within(self.counts, self.period)

    @property
    def now_latency(self) -> pl.LazyFrame:
        if self.histograms is None:
            raise ValueError("load(..., latency=True) to read latency histograms")
        return within(self.histograms, self.period)


# Where a notebook looks for a route log when its log_dir parameter is None and $ROUTEKIT_LOG_DIR is unset,
# relative to the notebook (JupyterLab and the report runner start its kernel in its folder): the log `make demo`
# writes, then a ./routelog (the CLI's default) of the project above or of the notebook's own folder.
LOG_CANDIDATES = ("../demo/routelog", "../routelog", "routelog")


def _holds_log(path: str) -> bool:
    return "://" in path or any(Path(path).glob("date=*"))   # a URL is taken as given; its reader says if not


def find_log(log_dir: str | Path | None = None) -> tuple[str | None, tuple[str, ...]]:
    """The route log a notebook reads, and where it looked: ``log_dir`` when given, else ``$ROUTEKIT_LOG_DIR``,
    else the first of :data:`LOG_CANDIDATES` that holds one.  None when the place holds no ``date=`` partition."""
    import os

    asked = [str(log_dir)] if log_dir else [os.environ["ROUTEKIT_LOG_DIR"]] if os.environ.get(
        "ROUTEKIT_LOG_DIR") else list(LOG_CANDIDATES)
    return next((p for p in asked if _holds_log(p)), None), tuple(asked)


def load(log_dir: str | Path | None = None, since: date | str | None = None, until: date | str | None = None,
         latency: bool = False, grain: str | None = "day") -> Data:
    """Rollups of the route log (``find_log``; built first for new or changed days), reduced for the dashboards of a
    period, charted by ``grain`` (hour, day, week or month; None: by the hour for a period of up to
    ``HOURLY_DAYS`` days, else by the day, as ``Data.grain`` then says).  With no log the frames are empty and
    ``header`` says so: every chart and table shows "none".

    Counts and latency histograms come from the day-grain table (a 10M-record log: 37k rows, not 481k) unless the
    grain is the hour (the hour grain: its counts of the period and as long before it, at least
    ``HOURLY_HISTORY_DAYS``, however long the log; its histograms of the period only); ``Data.hours`` reads the hour
    grain's counts when asked (incidents are found hour by hour).  The day table is read once, whole, and what was
    made of it kept in the process under the rollups' fingerprint (a report job runs its notebooks in one kernel)."""
    from .rollups import build_rollups, fingerprint

    if grain is not None and grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; choose one of {', '.join(GRAINS)}, or None (by the hour for "
                         f"a period of up to {HOURLY_DAYS} days, else by the day)")
    log, looked_in = find_log(log_dir)
    if log:
        build_rollups(log)
    built = fingerprint(log) if log else ""
    days = _kept((log, built, "day"), lambda: _rollups(log, "day").collect()).lazy()
    period = _kept((log, built, "period", since, until), lambda: period_of(days, since, until))
    grain = grain or ("hour" if period.days <= HOURLY_DAYS else "day")
    hourly = grain == "hour"
    hist = None
    if latency and hourly:
        hist = _kept((log, built, "histograms", "hour", period),
                     lambda: histograms(within(_rollups(log, "hour"), period), hourly=True))
    elif latency:
        hist = _kept((log, built, "histograms", "day", period.until),
                     lambda: histograms(days.filter(pl.col("date") <= period.until)))
    if hourly:
        history = _kept((log, built, "counts", "hour", period), lambda: counts(_hour_history(log, period)))
    else:
        history = _kept((log, built, "counts", "day", period.until),
                        lambda: counts(days.filter(pl.col("date") <= period.until)))
    return Data(period, history, hist, log, looked_in, built, grain)


def _hour_history(log: str | None, period: Period) -> pl.LazyFrame:
    """The hour grain of ``period`` and of as many days before it (what changed since the span before), at least
    ``HOURLY_HISTORY_DAYS`` (an incident is an hour far off its model's usual rate): bounded however long the log."""
    since = period.since - timedelta(days=max(HOURLY_HISTORY_DAYS, period.days))
    return _rollups(log, "hour").filter(pl.col("date").is_between(since, period.until))


def _rollups(log: str | None, grain: str) -> pl.LazyFrame:
    """The built rollups of ``grain`` (empty with no log)."""
    from .rollups import load_rollups, rollup_schema

    return load_rollups(log, build=False, grain=grain) if log else pl.LazyFrame(schema=rollup_schema(grain))


# What load() read, per process, under the rollups' fingerprint: `routekit report` runs a job's notebooks one after
# another in one kernel, and most read the same tables.  A few entries: each may be a large frame.
_LOADED: dict[tuple, Any] = {}
_KEEP = 8


def _kept(key: tuple, make: Callable[[], Any]) -> Any:
    if not key[0]:   # no log: nothing worth keeping
        return make()
    if key not in _LOADED:
        while len(_LOADED) >= _KEEP:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = make()
    return _LOADED[key]


def load_policy_or_default(policy_path: str | Path | None) -> Any:
    """A notebook's policy: ``policy_path``; None: ``$ROUTEKIT_POLICY`` or the shipped demo policy (the one the
    demo's log was routed with); "": no policy (budgets, tiers and alias prices unknown)."""
    from .policy import load_policy
    from .resources import default_policy, find

    if policy_path == "":
        return None
    return load_policy(find(policy_path) if policy_path else default_policy())


def within(rollups: Frame, period: Period) -> pl.LazyFrame:
    return rollups.lazy().filter(pl.col("date").is_between(period.since, period.until))


def production(rollups: Frame) -> pl.LazyFrame:
    return rollups.lazy().filter(~pl.col("is_shadow"))


def _column(by: str) -> str:
    try:
        return DIMENSIONS[by]
    except KeyError:
        raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(DIMENSIONS)}") from None


def _ran(rollups: Frame) -> pl.LazyFrame:
    """Production requests that reached a provider or tool (a blocked request took no time worth plotting)."""
    return production(rollups).filter(pl.col("outcome") != "blocked")


def _dim(by: str) -> pl.Expr:
    return pl.col(_column(by)).fill_null(NONE).alias(by)


def _period(grain: str) -> pl.Expr:
    if grain == "hour":
        return pl.col("hour").dt.replace_time_zone(None).alias("period")
    if grain == "day":
        return pl.col("date").alias("period")
    if grain == "week":
        return pl.col("date").dt.truncate("1w").alias("period")
    if grain == "month":
        return pl.col("date").dt.truncate("1mo").alias("period")
    raise ValueError(f"unknown grain {grain!r}; choose one of {', '.join(GRAINS)}")


def _keys(by: str | None, grain: str | None) -> list[pl.Expr]:
    return [e for e in ((_period(grain) if grain else None), (_dim(by) if by else None)) if e is not None]


def _names(by: str | None, grain: str | None) -> list[str]:
    return [n for n, present in (("period", grain), (by, by)) if present]


def _n(condition: pl.Expr | None = None) -> pl.Expr:
    """Sum of requests, optionally of the rows meeting ``condition``."""
    r = pl.col("requests")
    return (r.filter(condition).sum() if condition is not None else r.sum()).cast(pl.Int64)


def _rate(num: str, den: str = "requests") -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)


def _grouped(rollups: Frame, by: str | None, grain: str | None) -> pl.LazyFrame:
    """The rollup with its group keys materialised as columns named ``period`` and ``by``."""
    keys = _keys(by, grain)
    return rollups.lazy().with_columns(keys) if keys else rollups.lazy()


# --- spend ------------------------------------------------------------------------------------------------------

def totals(rollups: Frame) -> pl.DataFrame:
    """One row of headline numbers for the period."""
    lf = rollups.lazy()
    prod = ~pl.col("is_shadow")
    return lf.select(
        requests=_n(prod), served=_n(prod & (pl.col("outcome") == "served")),
        failed=_n(prod & (pl.col("outcome") == "failed")), blocked=_n(prod & (pl.col("outcome") == "blocked")),
        cost_usd=total("cost_usd"), shadow_cost_usd=total("cost_usd", ~prod),
        failed_cost_usd=total("failed_cost_usd"), cache_savings_usd=total("cache_savings_usd"),
        unpriced_requests=pl.col("unpriced_requests").sum().cast(pl.Int64),
    ).with_columns(cost_per_success_usd=_rate("cost_usd", "served")).collect()


def spend(rollups: Frame, by: str = "team", grain: str = "day", top: int | None = None) -> pl.DataFrame:
    """Cost per period per group (shadow calls included: they were paid for); with ``top``, the groups beyond the
    ``top`` largest spenders are summed into one called ``(other)`` (a legend of 40 teams helps nobody)."""
    names = _names(by, grain)
    lf = _grouped(rollups, by, grain)
    if top is not None:
        biggest = lf.group_by(by).agg(total("cost_usd")).sort(["cost_usd", by], descending=[True, False])
        keep = biggest.head(top).select(by).collect()[by]
        lf = lf.with_columns(pl.when(pl.col(by).is_in(keep.implode())).then(pl.col(by)).otherwise(pl.lit(OTHER))
                             .alias(by))
    return (lf.group_by(names)
            .agg(cost_usd=total("cost_usd"), requests=_n(~pl.col("is_shadow")))
            .sort(names).collect())


def cost_drivers(rollups: Frame, period: Period, by: str = "team", n: int = 10) -> pl.DataFrame:
    """Top ``n`` groups by cost in ``period``, with the change against the period of equal length before it."""
    prev = period.previous
    lf = rollups.lazy().with_columns(_dim(by))
    in_now, in_prev = pl.col("date").is_between(period.since, period.until), pl.col("date").is_between(prev.since,
                                                                                                       prev.until)
    out = (lf.filter(in_now | in_prev).group_by(by)
           .agg(cost_usd=total("cost_usd", in_now), previous_usd=total("cost_usd", in_prev))
           .with_columns(change_usd=pl.col("cost_usd") - pl.col("previous_usd"))
           .with_columns(change_pct=_rate("change_usd", "previous_usd"),
                         share=pl.col("cost_usd") / total("cost_usd"))
           .sort(["cost_usd", by], descending=[True, False]).head(n))
    return out.collect()


def waste(rollups: Frame, grain: str = "day") -> pl.DataFrame:
    """Money and requests lost to failed attempts, retries, fallbacks and failures, per period."""
    prod = ~pl.col("is_shadow")
    return (_grouped(rollups, None, grain).group_by("period")
            .agg(failed_cost_usd=total("failed_cost_usd"),
                 failed_attempts=pl.col("failed_attempts").filter(prod).sum().cast(pl.Int64),
                 retried_requests=pl.col("retried_requests").filter(prod).sum().cast(pl.Int64),
                 fallback_requests=_n(prod & pl.col("fallback_used")),
                 failed_requests=_n(prod & (pl.col("outcome") == "failed")),
                 requests=_n(prod))
            .sort("period").collect())


def cost_per_success(rollups: Frame, by: str = "model", grain: str = "day") -> pl.DataFrame:
    """Everything production paid (failed attempts included) divided by the requests that were served."""
    names = _names(by, grain)
    return (production(_grouped(rollups, by, grain)).group_by(names)
            .agg(cost_usd=total("cost_usd"), served=_n(pl.col("outcome") == "served"))
            .with_columns(cost_per_success_usd=_rate("cost_usd", "served"))
            .sort(names).collect())


def cache_savings(rollups: Frame, grain: str = "day") -> pl.DataFrame:
    """Money saved by cached input reads, and the share of input tokens read from a cache."""
    return (_grouped(rollups, None, grain).group_by("period")
            .agg(cache_savings_usd=total("cache_savings_usd"), cost_usd=total("cost_usd"),
                 cache_read_tokens=pl.col("cache_read_tokens").sum(), input_tokens=pl.col("input_tokens").sum())
            .with_columns(cache_read_share=_rate("cache_read_tokens", "input_tokens"))
            .sort("period").collect())


BUDGET_SCOPES = {"team": "team", "intent": "intent", "route": "route_id", "provider": "provider"}  # -> column


def budget_status(rollups: Frame, budgets: Iterable[Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spend against each budget, cumulative within each budget period, and the alerts it crossed.

    ``budgets`` are ``policy.BudgetSpec`` (or dicts with name, limit_usd and optional scope, period, alerts).
    Returns (series: budget, period_start, date, spent_usd, limit_usd, fraction;
             alerts: budget, period_start, threshold, date, spent_usd, limit_usd) -- an alert is the first day in a
    budget period on which the cumulative spend reached ``threshold x limit``.
    """
    series, alerts = [], []
    for b in budgets:
        b = b if isinstance(b, dict) else b.model_dump()
        name, limit, period = b["name"], float(b["limit_usd"]), b.get("period", "monthly")
        thresholds = tuple(b.get("alerts", (0.5, 0.8, 1.0)))
        lf = rollups.lazy()
        for dim, value in (b.get("scope") or {}).items():
            lf = lf.filter(pl.col(BUDGET_SCOPES[dim]) == value)
        start = pl.col("date") if period == "daily" else pl.col("date").dt.truncate("1mo")
        s = (lf.group_by("date").agg(day_usd=total("cost_usd")).with_columns(period_start=start)
             .sort("date")
             .with_columns(spent_usd=pl.col("day_usd").cum_sum().over("period_start"))
             .select(pl.lit(name).alias("budget"), "period_start", "date", "spent_usd",
                     pl.lit(limit).alias("limit_usd"), (pl.col("spent_usd") / limit).alias("fraction"))
             .collect())
        series.append(s)
        for t in thresholds:
            alerts.append(s.filter(pl.col("fraction") >= t).group_by("budget", "period_start")
                          .agg(pl.col("date").min(), pl.col("spent_usd").sort_by("date").first())
                          .select("budget", "period_start", pl.lit(float(t)).alias("threshold"), "date",
                                  "spent_usd", pl.lit(limit).alias("limit_usd")))
    empty_s = {"budget": pl.String, "period_start": pl.Date, "date": pl.Date, "spent_usd": pl.Float64,
               "limit_usd": pl.Float64, "fraction": pl.Float64}
    empty_a = {"budget": pl.String, "period_start": pl.Date, "threshold": pl.Float64, "date": pl.Date,
               "spent_usd": pl.Float64, "limit_usd": pl.Float64}
    s = pl.concat(series) if series else pl.DataFrame(schema=empty_s)
    a = pl.concat(alerts).sort("date", "budget", "threshold") if alerts else pl.DataFrame(schema=empty_a)
    return s, a


# --- latency and reliability ------------------------------------------------------------------------------------

def latency(rollups: Frame, by: str = "model", grain: str = "day") -> pl.DataFrame:
    """p50/p95/p99 (ms) per period per group, long form: period, <by>, percentile, latency_ms, requests.

    Requests that reached a provider or tool only: blocked ones took no time worth plotting, and rows without the
    group key (grouping by model, nothing served) would be a meaningless line."""
    names = _names(by, grain)
    s = summarize(_grouped(_ran(rollups).filter(pl.col(_column(by)).is_not_null()), by, grain), names)
    return (s.select(*names, "requests", *(pl.col(f"{p}_ms").alias(p) for p in PERCENTILES))
            .unpivot(index=[*names, "requests"], variable_name="percentile", value_name="latency_ms")
            .select(*names, "percentile", "latency_ms", "requests").sort([*names, "percentile"]))


RATE_KINDS = {
    "error": pl.col("outcome") == "failed",
    "timeout": (pl.col("outcome") == "failed") & (pl.col("error_kind") == "timeout"),
    "empty answer": (pl.col("outcome") == "failed") & pl.col("error_kind").is_in(["empty", "malformed"]),
    "rate limited": (pl.col("outcome") == "failed") & pl.col("error_kind").is_in(["rate_limited", "overloaded"]),
    "blocked": pl.col("outcome") == "blocked",
    "fallback": pl.col("fallback_used"),
    "degraded": pl.col("degraded"),
}


def rates(rollups: Frame, by: str | None = None, grain: str | None = "day") -> pl.DataFrame:
    """Share of production requests that failed (all, timeouts, empty answers, rate limits), were blocked, fell back
    or were degraded; plus the share of provider attempts that failed. Long form: [period], [<by>], kind, rate,
    count, requests."""
    names = _names(by, grain)
    lf = production(_grouped(rollups, by, grain))
    agg = [_n(cond).alias(kind) for kind, cond in RATE_KINDS.items()]
    wide = lf.group_by(names).agg(*agg, requests=_n(), attempts=pl.col("attempts").sum().cast(pl.Int64),
                                  **{"failed attempt": pl.col("failed_attempts").sum().cast(pl.Int64)})
    kinds = [*RATE_KINDS, "failed attempt"]
    long = (wide.unpivot(index=[*names, "requests", "attempts"], on=kinds, variable_name="kind", value_name="count")
            .with_columns(rate=pl.when(pl.col("kind") == "failed attempt")
                          .then(pl.col("count") / pl.col("attempts")).otherwise(pl.col("count") / pl.col("requests"))))
    order = pl.col("kind").replace_strict({k: i for i, k in enumerate(kinds)}, return_dtype=pl.Int32)
    return long.select(*names, "kind", "rate", "count", "requests").sort([*names, order]).collect()


def circuit_openings(rollups: Frame, by: str = "route", grain: str = "day") -> pl.DataFrame:
    """Candidates skipped because their circuit was open, per period per group (groups with none left out)."""
    names = _names(by, grain)
    return (_grouped(rollups, by, grain).group_by(names)
            .agg(circuit_open_skips=pl.col("circuit_open_skips").sum().cast(pl.Int64))
            .filter(pl.col("circuit_open_skips") > 0).sort(names).collect())


def slowest(rollups: Frame, by: str = "route", n: int = 10) -> pl.DataFrame:
    """The ``n`` groups with the highest p95 over the whole frame, with their p50/p99 and the error and fallback
    rates of the requests that ran (blocked ones excluded, as in ``latency``)."""
    s = summarize(_grouped(_ran(rollups), by, None), [by])
    return (s.select(by, "requests", "p50_ms", "p95_ms", "p99_ms", "error_rate", "fallback_rate")
            .sort(["p95_ms", by], descending=[True, False]).head(n))


# --- quality ----------------------------------------------------------------------------------------------------

def verification(rollups: Frame, by: str = "model") -> pl.DataFrame:
    """Share of production requests whose answer failed its route's verification, per group."""
    return (production(_grouped(rollups, by, None)).group_by(by)
            .agg(requests=_n(), verification_failures=pl.col("verification_failures").sum().cast(pl.Int64))
            .with_columns(rate=_rate("verification_failures"))
            .sort(["rate", by], descending=[True, False]).collect())


def agent_call_failures(records: Frame) -> pl.DataFrame:
    """Per model that answered agents' calls (the attempt's alias and model, production only): ``tool_answers``,
    its answers to requests offering tools, and ``tool_call_failures`` among them (tool calls naming no tool
    offered, against the tool_choice, or with arguments not valid for the tool's schema); ``schema_answers``, its
    answers to ``json_schema`` requests, and ``schema_failures`` among them; each with its rate (null: no such
    answers).  Every answer counts, whether it served or was escalated past.  ``records``: route-log records
    (``scan_log(log).frame``)."""
    wanted = pl.col("tools_offered").is_not_null() | (pl.col("response_format") == "json_schema")
    answers = (records.lazy().filter(pl.col("shadow_of").is_null() & wanted)
               .select("tools_offered", "response_format", pl.col("attempts").alias("a")).explode("a")
               .filter(pl.col("a").struct.field("outcome").is_in(["ok", "verify_failed"])))
    tools, schema = pl.col("tools_offered").is_not_null(), pl.col("response_format") == "json_schema"
    failed = pl.col("a").struct.field("error_class")
    return (answers.group_by(alias=pl.col("a").struct.field("alias"), model=pl.col("a").struct.field("model"))
            .agg(tool_answers=tools.sum(), tool_call_failures=(tools & (failed == "tool_call_invalid")).sum(),
                 schema_answers=schema.sum(), schema_failures=(schema & (failed == "schema_invalid")).sum())
            .with_columns(pl.col("tool_answers", "tool_call_failures", "schema_answers", "schema_failures")
                          .cast(pl.Int64))
            .with_columns(tool_call_failure_rate=_rate("tool_call_failures", "tool_answers"),
                          schema_failure_rate=_rate("schema_failures", "schema_answers"))
            .select("alias", "model", "tool_answers", "tool_call_failures", "tool_call_failure_rate",
                    "schema_answers", "schema_failures", "schema_failure_rate")
            .sort(["alias", "model"]).collect())


def model_mismatches(rollups: Frame) -> pl.DataFrame:
    """Served production requests per serving alias and the model its provider reported, with how many of them the
    provider reported serving a model other than the one asked for (``model_mismatch``); only aliases with any.
    ``share`` is of all the alias's served requests."""
    per = (production(rollups).filter(pl.col("outcome") == "served").with_columns(_dim("alias"), _dim("model"))
           .group_by("alias", "model")
           .agg(requests=_n(), model_mismatches=pl.col("model_mismatches").sum().cast(pl.Int64)))
    return (per.filter(pl.col("model_mismatches").sum().over("alias") > 0)
            .with_columns(share=pl.col("model_mismatches") / pl.col("requests").sum().over("alias"))
            .sort(["alias", "model_mismatches", "model"], descending=[False, True, False]).collect())


_SERVE_KEYS = ("date", "route", "team", "requested_model", "alias", "model")


def degraded_serves(rollups: Frame) -> pl.DataFrame:
    """Every degraded serve (served below the route's quality floor), grouped per day, route, team and model."""
    keys = [_dim(k) if k in DIMENSIONS else pl.col(k) for k in _SERVE_KEYS]
    return (production(rollups).filter(pl.col("degraded") & (pl.col("outcome") == "served"))
            .group_by(keys).agg(requests=_n()).sort(list(_SERVE_KEYS)).collect())


def lower_tier_fallbacks(rollups: Frame, policy: Any) -> pl.DataFrame:
    """Every fallback that served a lower tier than the route's primary, per day, route, team and model.

    Tiers come from ``policy`` (a ``toolkit.policy.Policy``): the route's first candidate vs the alias that served.
    Rows whose route or alias the policy does not know are kept with null tiers (a renamed alias is worth seeing).
    """
    primary = {route: policy.chain(route)[0] for route in policy.routes}
    tiers = {alias: m.tier for alias, m in policy.models.items()}
    keys = [_dim(k) if k in DIMENSIONS else pl.col(k) for k in _SERVE_KEYS]
    fb = (production(rollups).filter(pl.col("fallback_used") & (pl.col("outcome") == "served"))
          .group_by(*keys, pl.col("degraded")).agg(requests=_n()).collect())
    fb = fb.with_columns(primary=pl.col("route").replace_strict(primary, default=None, return_dtype=pl.String))
    fb = fb.with_columns(primary_tier=pl.col("primary").replace_strict(tiers, default=None, return_dtype=pl.Int64),
                         served_tier=pl.col("alias").replace_strict(tiers, default=None, return_dtype=pl.Int64))
    lower = (pl.col("served_tier") < pl.col("primary_tier")) | pl.col("served_tier").is_null() | pl.col(
        "primary_tier").is_null()
    return (fb.filter(lower).select(*_SERVE_KEYS, "primary", "primary_tier", "served_tier", "degraded", "requests")
            .sort(list(_SERVE_KEYS)))


def serve_summary(serves: pl.DataFrame) -> pl.DataFrame:
    """One line per route and serving alias of ``degraded_serves`` / ``lower_tier_fallbacks`` rows: requests, days
    with any, first and last day (the per-day rows stay the full list)."""
    keys = [k for k in ("route", "primary", "primary_tier", "alias", "served_tier") if k in serves.columns]
    return (serves.group_by(keys)
            .agg(pl.col("requests").sum(), pl.col("date").n_unique().alias("days"), pl.col("date").min().alias("first"),
                 pl.col("date").max().alias("last"), pl.col("team").unique().sort().str.join(", ").alias("teams"))
            .sort(["requests", *keys], descending=[True] + [False] * len(keys)))


def shadow_vs_production(rollups: Frame) -> pl.DataFrame:
    """Per route: the production traffic beside its shadow traffic (requests, p50/p95, cost per request)."""
    lf = _grouped(rollups, "route", None).with_columns(
        traffic=pl.when(pl.col("is_shadow")).then(pl.lit("shadow")).otherwise(pl.lit("production")))
    shadowed = lf.filter(pl.col("is_shadow")).select("route").unique()
    s = summarize(lf.join(shadowed, on="route"), ["route", "traffic"])
    return (s.select("route", "traffic", "requests", "p50_ms", "p95_ms", "error_rate",
                     (pl.col("cost_usd") / pl.col("requests")).alias("cost_per_request_usd"))
            .sort("route", "traffic"))


# --- quality outcome tables (written by toolkit.evals) ----------------------------------------------------------

@dataclass(frozen=True)
class Drill:
    """One ``routekit drill`` report (its drill_report.json)."""

    source: str
    summary: dict[str, Any]      # scenario, description, totals, ok, ...
    intents: pl.DataFrame        # per intent: served, served_by_fallback, degraded, silent_downgrades, ...
    violations: pl.DataFrame     # silent downgrades and boundary violations, one row per request


@dataclass(frozen=True)
class QualityTables:
    """What ``toolkit.evals`` and ``toolkit.drill`` left under a quality directory (``None`` / empty: not yet)."""

    baseline: pl.DataFrame | None        # evals.summarize_scores: model, intent, prompts, scored, mean_score, ...
    shadow: pl.DataFrame | None          # one row per evals.ShadowComparison
    drills: tuple[Drill, ...]
    other: dict[str, pl.DataFrame]       # any other table, by file path
    notes: dict[str, str]                # markdown files, by file path
    problems: tuple[str, ...]            # files that could not be read, with why


def quality_tables(quality_dir: str | Path | None) -> QualityTables:
    """Read every quality table under ``quality_dir`` (recursively): baseline ``summary.csv`` (or
    ``scores.parquet``/``.csv``/``.jsonl``, summarised here), shadow comparisons (JSON lists of comparisons, as
    ``routekit eval shadow --json`` prints), drill reports (``drill_report.json``), other CSV/Parquet/JSON tables
    and Markdown notes.  A file that cannot be read is named in ``problems``; the others still load."""
    import json

    from . import evals

    baseline, shadow, drills, other, notes, problems = [], [], [], {}, {}, []
    root = Path(quality_dir) if quality_dir else None
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root and root.is_dir() else []
    summarized = {p.parent for p in files if p.name == "summary.csv"}
    drilled = {p.parent for p in files if p.name == "drill_report.json"}
    for p in files:
        name = str(p.relative_to(root))
        try:
            if p.name == "summary.csv":
                baseline.append(pl.read_csv(p).with_columns(source=pl.lit(name)))
            elif p.name in (*evals.SCORE_TABLE_FILES, evals.ScoreStore.NAME, evals.ScoreStore.OLD_NAME):
                if p.parent in summarized or (p.suffix != ".parquet" and (p.parent / f"{p.stem}.parquet").exists()):
                    continue
                table = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p) if p.suffix == ".csv" \
                    else pl.read_ndjson(p)
                # an older or hand-made table may lack columns evals.summarize_scores reads: give them as nulls
                table = pl.concat([pl.DataFrame(schema=evals.score_schema()), table], how="diagonal_relaxed")
                baseline.append(evals.summarize_scores(table).with_columns(source=pl.lit(name)))
                summarized.add(p.parent)
            elif p.name == "drill_report.json":
                summary = json.loads(p.read_text())
                drills.append(Drill(name, summary, pl.DataFrame(summary.get("intents") or [], infer_schema_length=None),
                                    pl.DataFrame(summary.get("violations") or [], infer_schema_length=None)))
            elif p.parent in drilled and p.name.startswith("drill_"):
                continue  # its drill_report.json says it all
            elif p.suffix == ".json":
                rows = json.loads(p.read_text())
                if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
                    table = pl.DataFrame(rows, infer_schema_length=None)
                    if {"verdict", "candidate", "production"} <= set(table.columns):
                        shadow.append(table.with_columns(source=pl.lit(name)))
                    else:
                        other[name] = table
            elif p.suffix in (".csv", ".parquet"):
                other[name] = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p)
            elif p.suffix == ".md":
                notes[name] = p.read_text()
        except Exception as e:  # noqa: BLE001 -- one unreadable file must not hide the others
            problems.append(f"{name}: {type(e).__name__}: {e}")
    return QualityTables(pl.concat(baseline, how="diagonal_relaxed") if baseline else None,
                         pl.concat(shadow, how="diagonal_relaxed") if shadow else None, tuple(drills), other, notes,
                         tuple(problems))


def baseline_matrix(baseline: pl.DataFrame | None) -> pl.DataFrame:
    """Mean score per model per intent (the ``*`` all-intents rows left out), for ``charts.baseline_scores``."""
    if baseline is None:
        return pl.DataFrame(schema={"model": pl.String, "intent": pl.String, "score": pl.Float64, "n": pl.Int64})
    return (baseline.filter(pl.col("intent") != "*")
            .select("model", "intent", pl.col("mean_score").cast(pl.Float64).alias("score"),
                    pl.col("scored").cast(pl.Int64).alias("n"))
            .drop_nulls("score").sort("model", "intent"))


def shadow_summary(shadow: pl.DataFrame | None) -> pl.DataFrame:
    """One row per comparison for ``charts.shadow_comparison``: label, metric value, CI, verdict, pairs."""
    schema = {"comparison": pl.String, "rate": pl.Float64, "low": pl.Float64, "high": pl.Float64,
              "verdict": pl.String, "n": pl.Int64}
    if shadow is None:
        return pl.DataFrame(schema=schema)
    return shadow.select(
        pl.format("{}: {} vs {} ({})", "intent", "candidate", "production", "metric").alias("comparison"),
        pl.col("value").alias("rate"), pl.col("ci_low").alias("low"), pl.col("ci_high").alias("high"),
        "verdict", pl.col("pairs").alias("n")).cast(schema)


# --- what-if ----------------------------------------------------------------------------------------------------

def observed_scenario(rollups: Frame, prices: Any = None, policy: Any = None, name: str = "as logged") -> Any:
    """The traffic the rollups show, as an ``estimate.Scenario``: served production requests per day per intent,
    mean prompt and output tokens, the mix of models that served, the cache-read share of input tokens.

    Rollups keep sums, not distributions: token counts are means (no low-high band). Each serve is named by its
    policy alias when ``policy`` prices it, else by the model string that served when the snapshot does; a serve
    neither can price is left out of the mix and named in the scenario's description."""
    from .costs import PriceBook

    prices = prices or PriceBook.load()

    def priced(model: str | None) -> bool:
        return model is not None and prices.rates_of(model, policy) is not None

    served = production(rollups).filter((pl.col("outcome") == "served") & pl.col("served_alias").is_not_null())
    days = rollups.lazy().select(pl.col("date").n_unique()).collect().item() or 1
    per = (served.group_by("intent", "served_alias", "served_model")
           .agg(pl.col("requests").sum(), pl.col("prompt_tokens").sum(), pl.col("output_tokens").sum(),
                pl.col("input_tokens").sum(), pl.col("cache_read_tokens").sum())
           .sort("intent", "requests", descending=[False, True]).collect())
    names = {(a, m): a if priced(a) else m if priced(m) else None for a, m in per.select("served_alias",
                                                                                        "served_model").iter_rows()}
    per = per.with_columns(model=pl.struct("served_alias", "served_model").map_elements(
        lambda r: names[(r["served_alias"], r["served_model"])], return_dtype=pl.String))
    loads, left_out = [], []
    for (intent,), g in per.group_by("intent", maintain_order=True):
        n, kept = int(g["requests"].sum()), g.filter(pl.col("model").is_not_null())
        left_out += [f"{r['served_alias']} ({intent}, {r['requests'] / n:.0%})"
                     for r in g.filter(pl.col("model").is_null()).iter_rows(named=True)]
        k = int(kept["requests"].sum())
        if k == 0:
            continue
        mix: dict[str, float] = {}
        for r in kept.iter_rows(named=True):
            mix[r["model"]] = mix.get(r["model"], 0.0) + r["requests"] / k
        hit = kept["cache_read_tokens"].sum() / max(kept["input_tokens"].sum(), 1)
        loads.append(IntentLoad(intent, k / days, Dist.of(float(kept["prompt_tokens"].sum() / k)),
                                Dist.of(float(kept["output_tokens"].sum() / k)), mix, min(max(float(hit), 0.0), 1.0)))
    note = f"measured from the route log over {days} days"
    if left_out:
        note += "; left out (no price): " + ", ".join(left_out)
    return Scenario(name, tuple(loads), description=note)


def vary(scenario: Any, volume: float = 1.0, tokens: float = 1.0, price: float = 1.0, name: str | None = None,
         price_of: str | None = None) -> Any:
    """A copy of an ``estimate.Scenario`` with requests, tokens (input and output) and every rate (or, with
    ``price_of``, that model's only) multiplied; named ``name``, else "<name> (edited)" when anything moved
    (scenarios are compared by name)."""
    from dataclasses import replace

    def scale(d: Any) -> Any:
        return Dist(d.mean * tokens, d.p10 * tokens, d.p90 * tokens)

    loads = tuple(replace(i, requests_per_day=i.requests_per_day * volume, input_tokens=scale(i.input_tokens),
                          output_tokens=scale(i.output_tokens)) for i in scenario.intents)
    changes = dict(scenario.price_changes)
    if price != 1.0:
        for model in {m for i in scenario.intents for m in i.mix if price_of in (None, m)}:
            old = changes.get(model, changes.get("*"))
            if isinstance(old, dict):  # a price override: scale each of its numbers
                changes[model] = {k: v * price if isinstance(v, (int, float)) else v for k, v in old.items()}
            else:
                changes[model] = (1.0 if old is None else float(old)) * price
    moved = (volume, tokens, price) != (1.0, 1.0, 1.0)
    return replace(scenario, name=name or (f"{scenario.name} (edited)" if moved else scenario.name), intents=loads,
                   price_changes=changes)


def scenario_costs(rows: pl.DataFrame, by: str = "intent", month: int = 1) -> pl.DataFrame:
    """Monthly cost per scenario per ``by`` (intent or model) in ``month``, from ``estimate.estimate_scenarios``
    rows (columns: scenario, <by>, monthly_usd, low_usd, high_usd; unpriced rows left out)."""
    return (rows.filter((pl.col("month") == month) & ~pl.col("unpriced"))
            .group_by("scenario", by, maintain_order=True)
            .agg(pl.col("monthly_usd").sum(), pl.col("low_usd").sum(), pl.col("high_usd").sum()))


SAME_DRIVERS = "volume, tokens or every price"


def sensitivity(scenario: Any, prices: Any = None, policy: Any = None,
                factors: Iterable[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0), month: int = 1,
                models: int = 4, days: int = DAYS_PER_MONTH) -> pl.DataFrame:
    """Projected monthly cost (months of ``days`` days) as one driver is multiplied and the others stay put (columns:
    driver, factor, monthly_usd): volume, tokens, every price, and the price of each of the ``models`` models that
    cost most (which vendor's price change would matter).  Volume, tokens and every price move the cost alike unless
    tiers or fixed costs bend one of them: lines that coincide are folded into one, named :data:`SAME_DRIVERS`."""

    factors = list(factors)
    base = estimate_scenarios([scenario], prices, policy=policy, days=days).filter((pl.col("month") == month)
                                                                                  & ~pl.col("unpriced"))
    top = (base.group_by("model").agg(pl.col("monthly_usd").sum()).sort("monthly_usd", descending=True)
           .head(models)["model"].to_list() if "model" in base.columns else [])
    # driver -> (the multiplier it moves, the one model whose price it moves)
    drivers = {"volume": ("volume", None), "tokens": ("tokens", None), "price": ("price", None),
               **{f"price of {m}": ("price", m) for m in top if len(top) > 1}}
    variants = [vary(scenario, **{moved: x}, price_of=only, name=f"{driver}|{x}")
                for driver, (moved, only) in drivers.items() for x in factors]
    rows = estimate_scenarios(variants, prices, policy=policy, days=days)
    out = (rows.filter((pl.col("month") == month) & ~pl.col("unpriced"))
           .group_by("scenario", maintain_order=True).agg(pl.col("monthly_usd").sum())
           .select(pl.col("scenario").str.split("|").list.get(0).alias("driver"),
                   pl.col("scenario").str.split("|").list.get(1).cast(pl.Float64).alias("factor"),
                   "monthly_usd"))
    line = {d: out.filter(driver=d)["monthly_usd"].to_list() for d in ("volume", "tokens", "price")}
    if all(len(v) == len(line["volume"]) and all(abs(a - b) <= 1e-9 * max(abs(a), 1) for a, b in
                                                 zip(v, line["volume"])) for v in line.values()):
        out = pl.concat([out.filter(driver="volume").with_columns(driver=pl.lit(SAME_DRIVERS)),
                         out.filter(~pl.col("driver").is_in(list(line)))])
    return out


# --- headlines: the two or three numbers the reports' index shows for each page -------------------------------------

def spend_headline(data: Data, compare_days: int = 30) -> dict[str, str]:
    """Spend in the period, and how its last ``compare_days`` days compare with the same span before."""
    from .tables import money, percent

    window = data.period.last(compare_days)
    now, before = (within(data.counts, p).select(total("cost_usd")).collect().item()
                   for p in (window, window.previous))
    change = (now - before) / before if before else None
    return {"spend": money(data.now.select(total("cost_usd")).collect().item()),
            f"change (last {window.days} days)": percent(change, sign=True)}


def latency_headline(data: Data) -> dict[str, str]:
    """p95 latency and error rate of the period's production traffic."""
    from .tables import ms, percent

    s = summarize(production(data.now_latency), [])
    errors = totals(data.now)
    rate = errors["failed"].item() / errors["requests"].item() if errors["requests"].item() else None
    return {"p95": ms(s["p95_ms"].item() if s.height else None), "error rate": percent(rate, 2)}


def quality_headline(data: Data, policy: Any, tables: QualityTables) -> dict[str, str]:
    """Degraded serves, lower-tier fallbacks and the drills' silent downgrades (each one counts)."""
    from .tables import count

    served = lambda f: int(f["requests"].sum()) if f is not None and not f.is_empty() else 0  # noqa: E731
    lower = lower_tier_fallbacks(data.now, policy) if policy else None
    silent = sum(int(dr.summary.get("totals", {}).get("silent_downgrades", 0)) for dr in tables.drills)
    return {"degraded serves": count(served(degraded_serves(data.now))),
            "lower-tier fallbacks": count(served(lower)) if policy else "n/a (no policy)",
            "silent downgrades (drills)": count(silent) if tables.drills else "no drill yet"}


def what_if_headline(rows: pl.DataFrame, month: int = 1) -> dict[str, str]:
    """The cheapest and the dearest scenario per month."""
    from .tables import money

    costs = (rows.filter(pl.col("month") == month).group_by("scenario", maintain_order=True)
             .agg(pl.col("monthly_usd").sum()).sort("monthly_usd"))
    if costs.is_empty():
        return {}
    (low, low_usd), (high, high_usd) = costs.row(0), costs.row(-1)
    return {"cheapest": f"{low} {money(low_usd)}/month", "dearest": f"{high} {money(high_usd)}/month"}
