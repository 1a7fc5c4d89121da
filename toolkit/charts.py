"""Altair chart builders for the dashboards: one function per chart, each fed a small frame from
``toolkit.dashboards`` (never raw records: altair's 5,000-row guard stays on and would stop a mistake).

Importing this module registers and enables, once per process:
- the ``routekit`` theme: one font, palette and size, titles, light grid;
- the ``routekit`` renderer: each chart is displayed as Vega-Lite JSON (interactive, with tooltips, in JupyterLab,
  whose built-in renderer needs no network) *and* as an SVG drawn by vl-convert (what nbconvert puts in the HTML
  reports: it renders offline from disk with no JavaScript at all; each mark carries its tooltip as an SVG title).

Units are in the axis titles and formats: $ for money, ms for latency, % for rates.
"""
from __future__ import annotations

import re
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl

from .estimate import DAYS_PER_MONTH, estimate_scenarios


def _import_altair() -> Any:
    """altair, imported without jsonschema's optional IRI checker: rfc3987_syntax compiles a Lark grammar on import
    (a second of every report kernel's start), for the formats "iri" and "iri-reference" that the Vega-Lite schema
    never uses.  Blocked only while altair (and so jsonschema) first imports; importing it later works as usual."""
    block = "jsonschema._format" not in sys.modules and "rfc3987_syntax" not in sys.modules
    if block:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # Python's "import fails" marker
    try:
        import altair
    finally:
        if block:
            del sys.modules["rfc3987_syntax"]
    return altair


alt = _import_altair()

PCT, MS, COUNT = ".1%", ",.0f", ",d"
GRAIN_TITLE = {"hour": "Hour (UTC)", "day": "Day (UTC)", "week": "Week (UTC)", "month": "Month (UTC)"}
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d", "#bab0ac",
           "#ff9da6"]
BAD, GOOD, NEUTRAL = "#d62728", "#2ca02c", "#4c78a8"
WIDTH, HEIGHT = 640, 240
MAX_POINTS = 5000  # altair's own guard against handing it raw records
VEGALITE_MIME = f"application/vnd.vegalite.v{alt.SCHEMA_VERSION.lstrip('v').split('.')[0]}+json"
VEGALITE5_MIME = "application/vnd.vegalite.v5+json"
VL_VERSION = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])


def _theme() -> dict[str, Any]:
    font = "Helvetica, Arial, sans-serif"
    return {"config": {
        "font": font, "background": "white",
        "view": {"continuousWidth": WIDTH, "continuousHeight": HEIGHT, "stroke": None},
        "title": {"fontSize": 15, "anchor": "start", "subtitleColor": "#555", "subtitleFontSize": 12,
                  "offset": 10},
        "axis": {"labelFontSize": 11, "titleFontSize": 12, "titleColor": "#333", "gridColor": "#eee",
                 "domainColor": "#999", "tickColor": "#999"},
        # below the plot, in columns: a legend of long model names at the right pushed charts past the notebook's
        # width, where JupyterLab cut it off
        "legend": {"labelFontSize": 11, "titleFontSize": 12, "orient": "bottom", "direction": "horizontal",
                   "columns": 3, "labelLimit": 180, "symbolLimit": 40},
        "range": {"category": PALETTE},
        "line": {"strokeWidth": 2}, "point": {"size": 40},
        "bar": {"cornerRadiusEnd": 1},
    }}


_LABELLED = re.compile(r'<(path|circle|rect|line|symbol)\b([^>]*?\saria-label="([^"]*)"[^>]*?)/>')


def _svg(spec: dict) -> str:
    """vl-convert's SVG, each mark given a <title> from its aria-label (the tooltip fields): hovering a mark in the
    HTML reports shows its numbers with no JavaScript at all."""
    import vl_convert as vlc

    def titled(m: re.Match) -> str:
        if 'aria-roledescription="line mark"' in m[2]:
            return m[0]  # a line's label describes only its first point: the point marks on it carry the titles
        return f"<{m[1]}{m[2]}><title>{m[3].replace('; ', chr(10))}</title></{m[1]}>"

    return _LABELLED.sub(titled, vlc.vegalite_to_svg(spec, vl_version=VL_VERSION))


def as_vegalite5(spec: dict) -> dict:
    """The spec labelled Vega-Lite 5: JupyterLab 4 renders Vega-Lite 3 to 5 only, and every chart here uses nothing
    newer (tests/test_charts.py compiles each one with Vega-Lite 5.8)."""
    return {**spec, "$schema": "https://vega.github.io/schema/vega-lite/v5.json"}


def interactive(spec: dict) -> dict[str, Any]:
    """The Vega-Lite bundle a Jupyter frontend draws itself, offline (JupyterLab's renderer is built in): v5 for
    JupyterLab 4, v6 for frontends that know it; drawn as SVG (crisp, and its marks can be read back)."""
    title = spec.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    spec = {**spec, "usermeta": {"embedOptions": {"renderer": "svg", "actions": False}}}
    return {VEGALITE_MIME: spec, VEGALITE5_MIME: as_vegalite5(spec), "text/plain": f"<chart: {title or 'untitled'}>"}


def _render(spec: dict, **metadata: Any) -> dict[str, Any]:
    """Every chart displayed in a notebook: interactive Vega-Lite for JupyterLab (tooltips), SVG for everything else
    (nbconvert's HTML reports, GitHub)."""
    return {**interactive(spec), "image/svg+xml": _svg(spec)}


def setup() -> None:
    """Register and enable the routekit theme and renderer (idempotent)."""
    if "routekit" not in alt.theme.names():
        alt.theme.register("routekit", enable=True)(_theme)
    alt.theme.enable("routekit")
    if "routekit" not in alt.renderers.names():
        alt.renderers.register("routekit", _render)
    alt.renderers.enable("routekit")


setup()


# --- export -----------------------------------------------------------------------------------------------------

def to_svg(chart: alt.TopLevelMixin) -> str:
    return _svg(chart.to_dict())


def save(chart: alt.TopLevelMixin, path: str | Path, scale: float = 2.0) -> Path:
    """Write a chart as .svg, .png (``scale`` x resolution) or .html (JavaScript inlined: opens offline)."""
    import vl_convert as vlc

    path = Path(path)
    spec = chart.to_dict()
    if path.suffix == ".svg":
        path.write_text(_svg(spec))
    elif path.suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, vl_version=VL_VERSION, scale=scale))
    elif path.suffix == ".html":
        path.write_text(vlc.vegalite_to_html(spec, vl_version=VL_VERSION, bundle=True))
    else:
        raise ValueError(f"{path}: export as .svg, .png or .html")
    return path


# --- building blocks --------------------------------------------------------------------------------------------

def usd(*values: pl.Series | float | None, sign: bool = False) -> str:
    """A d3 money format with enough decimals for the largest of ``values`` ($1,234.50 but also $0.000920: a demo
    day of cheap models must not read "$0.00" on every tick)."""
    from .tables import money_decimals

    decimals = money_decimals(x for v in values for x in (v.to_list() if isinstance(v, pl.Series) else [v]))
    return f"{'+' if sign else ''}$,.{decimals}f"


def _title(text: str, subtitle: str | None = None) -> alt.Title:
    return alt.Title(text, subtitle=subtitle) if subtitle else alt.Title(text)


def no_data(title: str, message: str) -> alt.Chart:
    """A titled panel saying there is nothing to draw (an empty plot would look like a rendering fault)."""
    return (alt.Chart(pl.DataFrame({"message": [message]}), title=_title(title))
            .mark_text(fontSize=14, color="#555", align="left", x=5)
            .encode(text="message:N").properties(width=WIDTH, height=40))


TIME_UNIT = {"hour": "yearmonthdatehours", "day": "yearmonthdate", "month": "yearmonth"}


def _time_axis(grain: str, times: pl.Series | None = None) -> alt.Axis:
    """A time axis labelled at the data's own periods when there are few of them (left alone, vega puts ticks
    every few hours and a two-day chart reads "Mar 01, Mar 01, Mar 02")."""
    fmt = "%b %d %H:%M" if grain == "hour" else "%b %Y" if grain == "month" else "%b %d"
    if times is None or times.n_unique() > 16:
        return alt.Axis(format=fmt)
    values = [alt.DateTime(year=t.year, month=t.month, date=t.day, hours=getattr(t, "hour", 0))
              for t in times.unique().sort().to_list()]
    return alt.Axis(format=fmt, values=values)


def _day(d: Any) -> alt.DateTime:
    return alt.DateTime(year=d.year, month=d.month, date=d.day)


def _period_x(grain: str, frame: pl.DataFrame, field: str = "period", span: tuple[Any, Any] | None = None) -> alt.X:
    """The time axis; ``span`` (first day, last day) fixes its range, so a chart of rare events (three degraded
    serves on one day) shows that day inside the whole period instead of one bar filling the chart."""
    if frame.height > MAX_POINTS:  # altair would refuse too, less helpfully
        raise ValueError(f"{frame.height:,} points per {grain}: too many to draw; choose a coarser grain or a "
                         f"shorter period")
    # a time unit makes a bar fill its whole day (or hour) instead of a hairline
    scale = alt.Scale(domain=[_day(span[0]), _day(span[1] + timedelta(days=1))]) if span else alt.Undefined
    axis = _time_axis(grain, None if span else frame[field])
    return alt.X(f"{field}:T", timeUnit=TIME_UNIT.get(grain), title=GRAIN_TITLE.get(grain, "Period (UTC)"),
                 axis=axis, scale=scale)


def current_period(grain: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The UTC period (hour, day, week from Monday, month) that is not over yet: its start and end, naive UTC."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    if grain == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if grain == "month":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    return day, day + timedelta(days=1)


def _partial(chart: alt.Chart, frame: pl.DataFrame, grain: str, field: str = "period") -> alt.Chart | alt.LayerChart:
    """``chart`` with its last period shaded and labelled "so far" when that period is not over yet (today's bar is
    a few hours of traffic: drawn plain it reads as a cliff at the right edge)."""
    start, end = current_period(grain)
    last = frame[field].max() if not frame.is_empty() else None
    if isinstance(last, date) and not isinstance(last, datetime):
        last = datetime.combine(last, datetime.min.time())
    if last is None or last < start:
        return chart
    shade = pl.DataFrame({"start": [start], "end": [end], "note": ["so far (partial)"]})
    band = alt.Chart(shade).mark_rect(color="#888", opacity=0.13).encode(alt.X("start:T"), alt.X2("end:T"))
    note = alt.Chart(shade).mark_text(align="right", baseline="top", dx=-3, dy=3, fontSize=10, color="#555").encode(
        alt.X("end:T"), y=alt.value(0), text="note:N")
    title = chart.title
    inner = chart.copy()
    inner.title = alt.Undefined
    return alt.layer(inner, band, note, title=title)


def _period_tip(grain: str) -> alt.Tooltip:
    return alt.Tooltip("period:T", title=GRAIN_TITLE.get(grain, "Period"),
                       format="%Y-%m-%d %H:%M" if grain == "hour" else "%Y-%m-%d")


def _label(by: str) -> str:
    return by.replace("_", " ")


# --- spend ------------------------------------------------------------------------------------------------------

def spend_over_time(frame: pl.DataFrame, by: str, grain: str = "day") -> alt.Chart:
    """Stacked spend per period per group (``dashboards.spend``)."""
    title = f"Spend by {_label(by)} per {grain}"
    if frame.is_empty():
        return no_data(title, "No spend in the period.")
    money = usd(frame.group_by("period").agg(pl.col("cost_usd").sum())["cost_usd"])
    return _partial(alt.Chart(frame, title=_title(title, "USD, failed attempts and shadow calls included"))
                    .mark_bar()
                    .encode(_period_x(grain, frame),
                            alt.Y("sum(cost_usd):Q", title="Spend ($)", axis=alt.Axis(format=money)),
                            alt.Color(f"{by}:N", title=_label(by), sort="-y"),
                            tooltip=[_period_tip(grain), alt.Tooltip(f"{by}:N", title=_label(by)),
                                     alt.Tooltip("cost_usd:Q", title="spend", format=money),
                                     alt.Tooltip("requests:Q", title="requests", format=COUNT)]), frame, grain)


def budget_vs_actual(series: pl.DataFrame, alerts: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Cumulative spend as a share of each budget's limit, with a mark where each alert threshold was crossed
    (``dashboards.budget_status``)."""
    title = "Budgets: spend vs limit"
    if series.is_empty():
        return no_data(title, "No budgets in the policy (or no spend in their scope).")
    money = usd(series["spent_usd"], series["limit_usd"])
    tips = [alt.Tooltip("budget:N"), alt.Tooltip("date:T", format="%Y-%m-%d"),
            alt.Tooltip("spent_usd:Q", title="spent in period", format=money),
            alt.Tooltip("limit_usd:Q", title="limit", format=money)]
    x, y = _period_x("day", series, "date"), alt.Y("fraction:Q", title="Share of limit (%)", axis=alt.Axis(format="%"))
    base = alt.Chart(series, title=_title(title, "cumulative within each budget period; ▲ = alert threshold crossed"))
    line = base.mark_line(interpolate="step-after", point=alt.OverlayMarkDef(size=15)).encode(
        x, y, alt.Color("budget:N", title="budget"),
        tooltip=[*tips, alt.Tooltip("fraction:Q", title="share of limit", format=PCT)])
    limit = alt.Chart(pl.DataFrame({"y": [1.0]})).mark_rule(color=BAD, strokeDash=[4, 3]).encode(y="y:Q")
    layers = [line, limit]
    if not alerts.is_empty():
        marks = alerts.with_columns(fraction=pl.col("spent_usd") / pl.col("limit_usd"))
        layers.append(alt.Chart(marks).mark_point(shape="triangle-up", filled=True, size=110, color=BAD).encode(
            x, y, tooltip=[*tips, alt.Tooltip("threshold:Q", title="alert at", format=".0%")]))
    return alt.layer(*layers)


def cost_drivers(frame: pl.DataFrame, by: str, period: str = "") -> alt.HConcatChart | alt.Chart:
    """Top groups by spend beside their change vs the previous period (``dashboards.cost_drivers``)."""
    title = f"Top cost drivers by {_label(by)}"
    if frame.is_empty():
        return no_data(title, "No spend in the period.")
    order = frame[by].to_list()
    money, change = usd(frame["cost_usd"], frame["previous_usd"]), usd(frame["change_usd"], sign=True)
    tips = [alt.Tooltip(f"{by}:N", title=_label(by)), alt.Tooltip("cost_usd:Q", title="this period", format=money),
            alt.Tooltip("previous_usd:Q", title="previous period", format=money),
            alt.Tooltip("change_usd:Q", title="change", format=change),
            alt.Tooltip("change_pct:Q", title="change %", format="+.1%"),
            alt.Tooltip("share:Q", title="share of spend", format=PCT)]
    y = alt.Y(f"{by}:N", title=_label(by), sort=order)
    base = alt.Chart(frame).properties(width=WIDTH // 2 - 40, height=alt.Step(22))
    spent = base.mark_bar(color=NEUTRAL).encode(
        y, alt.X("cost_usd:Q", title="Spend this period ($)", axis=alt.Axis(format=money)), tooltip=tips)
    change = base.mark_bar().encode(
        alt.Y(f"{by}:N", sort=order, axis=None),
        alt.X("change_usd:Q", title="Change vs previous period ($)", axis=alt.Axis(format=change)),
        color=alt.condition("datum.change_usd > 0", alt.value(BAD), alt.value(GOOD)), tooltip=tips)
    return alt.hconcat(spent, change, title=_title(title, period or None))


def waste(frame: pl.DataFrame, grain: str = "day") -> alt.VConcatChart | alt.Chart:
    """Money paid for failed attempts, and the requests that needed retries or fallbacks (``dashboards.waste``)."""
    title = "Waste: failed attempts, retries and fallbacks"
    if frame.is_empty():
        return no_data(title, "No traffic in the period.")
    x, fmt = _period_x(grain, frame), usd(frame["failed_cost_usd"])
    money = alt.Chart(frame).mark_bar(color=BAD).encode(
        x, alt.Y("failed_cost_usd:Q", title="Paid for failed attempts ($)", axis=alt.Axis(format=fmt)),
        tooltip=[_period_tip(grain), alt.Tooltip("failed_cost_usd:Q", title="paid for failures", format=fmt),
                 alt.Tooltip("failed_attempts:Q", title="failed attempts", format=COUNT)]
    ).properties(height=140)
    money = _partial(money, frame, grain)
    kinds = {"failed_attempts": "failed attempts", "retried_requests": "retried requests",
             "fallback_requests": "served by a fallback", "failed_requests": "failed requests"}
    counts = (frame.select("period", *kinds).unpivot(index="period", variable_name="kind", value_name="n")
              .with_columns(pl.col("kind").replace_strict(kinds)))
    lines = alt.Chart(counts).mark_line(point=True).encode(
        x, alt.Y("n:Q", title="Count"), alt.Color("kind:N", title=None, sort=list(kinds.values())),
        tooltip=[_period_tip(grain), alt.Tooltip("kind:N"), alt.Tooltip("n:Q", title="count", format=COUNT)]
    ).properties(height=160)
    return alt.vconcat(money, _partial(lines, frame, grain), title=_title(title)).resolve_scale(color="independent")


def cost_per_success(frame: pl.DataFrame, by: str, grain: str = "day") -> alt.Chart:
    """Cost per successful request per group over time (``dashboards.cost_per_success``)."""
    title = f"Cost per successful request by {_label(by)}"
    data = frame.drop_nulls("cost_per_success_usd")
    if data.is_empty():
        return no_data(title, "No served requests in the period.")
    fine, money = usd(data["cost_per_success_usd"]), usd(data["cost_usd"])
    chart = (alt.Chart(data, title=_title(title, "everything paid (failed attempts too) / requests served"))
             .mark_line(point=True)
             .encode(_period_x(grain, frame),
                     alt.Y("cost_per_success_usd:Q", title="Cost per successful request ($)",
                           axis=alt.Axis(format=fine)),
                     alt.Color(f"{by}:N", title=_label(by)),
                     tooltip=[_period_tip(grain), alt.Tooltip(f"{by}:N", title=_label(by)),
                              alt.Tooltip("cost_per_success_usd:Q", title="per success", format=fine),
                              alt.Tooltip("served:Q", title="served", format=COUNT),
                              alt.Tooltip("cost_usd:Q", title="spend", format=money)]))
    return _partial(chart, data, grain)


def cache_savings(frame: pl.DataFrame, grain: str = "day") -> alt.Chart:
    """Money saved by cached input reads per period (``dashboards.cache_savings``)."""
    title = "Cache savings"
    if frame.is_empty() or frame["cache_savings_usd"].sum() == 0:
        return no_data(title, "No cached input reads in the period: $0 saved.")
    saved, money = usd(frame["cache_savings_usd"]), usd(frame["cost_usd"])
    chart = (alt.Chart(frame, title=_title(title, "vs paying the full input price for cached tokens"))
             .mark_bar(color=GOOD)
             .encode(_period_x(grain, frame),
                     alt.Y("cache_savings_usd:Q", title="Saved ($)", axis=alt.Axis(format=saved)),
                     tooltip=[_period_tip(grain), alt.Tooltip("cache_savings_usd:Q", title="saved", format=saved),
                              alt.Tooltip("cache_read_share:Q", title="input tokens from cache", format=PCT),
                              alt.Tooltip("cost_usd:Q", title="spend", format=money)]))
    return _partial(chart, frame, grain)


# --- latency and reliability ------------------------------------------------------------------------------------

def latency(frame: pl.DataFrame, by: str, grain: str = "day", top: int = 6) -> alt.FacetChart | alt.Chart:
    """p50 / p95 / p99 per group over time, one panel per percentile, log scale (``dashboards.latency``): the ``top``
    groups by requests (more lines than that cannot be told apart; a table lists every one); the period not over yet
    is left out (its few hours of traffic make noisy percentiles)."""
    title = f"Latency by {_label(by)}"
    data = frame.drop_nulls("latency_ms")
    if data.is_empty():
        return no_data(title, "No requests in the period.")
    notes = ["percentiles read from summed histograms, production traffic"]
    busiest = data.group_by(by).agg(pl.col("requests").sum()).sort(["requests", by], descending=[True, False])
    if busiest.height > top:
        data = data.filter(pl.col(by).is_in(busiest[by].head(top).to_list()))
        notes.append(f"the {top} {_label(by)}s with the most requests of {busiest.height}")
    start, _ = current_period(grain)
    unfinished = pl.col("period").cast(pl.Datetime("us")) >= start
    if data.filter(unfinished).height and data.filter(~unfinished).height:
        data = data.filter(~unfinished)
        notes.append(f"the {grain} in progress left out")
    chart = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        _period_x(grain, frame),
        alt.Y("latency_ms:Q", title="Latency (ms)", scale=alt.Scale(type="log"), axis=alt.Axis(format=MS)),
        alt.Color(f"{by}:N", title=_label(by)),
        tooltip=[_period_tip(grain), alt.Tooltip(f"{by}:N", title=_label(by)), alt.Tooltip("percentile:N"),
                 alt.Tooltip("latency_ms:Q", title="latency (ms)", format=MS),
                 alt.Tooltip("requests:Q", title="requests", format=COUNT)],
    ).properties(width=WIDTH // 3 - 20, height=HEIGHT - 40)
    return chart.facet(column=alt.Column("percentile:N", title=None, sort=["p50", "p95", "p99"]),
                       title=_title(title, "; ".join(notes)))


def rates(frame: pl.DataFrame, grain: str = "day", kinds: tuple[str, ...] | None = None) -> alt.Chart:
    """Error, timeout, empty-answer, rate-limit, fallback... rates over time (``dashboards.rates``, no ``by``)."""
    title = "Error, timeout, empty-answer and fallback rates"
    data = frame.filter(pl.col("kind").is_in(list(kinds))) if kinds else frame
    if data.is_empty():
        return no_data(title, "No requests in the period.")
    order = list(dict.fromkeys(data["kind"].to_list()))
    chart = (alt.Chart(data, title=_title(title, "share of production requests (failed attempt: share of attempts)"))
             .mark_line(point=alt.OverlayMarkDef(size=12))
             .encode(_period_x(grain, frame), alt.Y("rate:Q", title="Rate (%)", axis=alt.Axis(format="%")),
                     alt.Color("kind:N", title=None, sort=order),
                     tooltip=[_period_tip(grain), alt.Tooltip("kind:N"),
                              alt.Tooltip("rate:Q", title="rate", format=".2%"),
                              alt.Tooltip("count:Q", title="count", format=COUNT),
                              alt.Tooltip("requests:Q", title="requests", format=COUNT)]))
    return _partial(chart, data, grain)


def circuit_openings(frame: pl.DataFrame, by: str = "route", grain: str = "day",
                     span: tuple[Any, Any] | None = None) -> alt.Chart:
    """Candidates skipped because their circuit breaker was open (``dashboards.circuit_openings``); ``span``: the
    period's first and last day."""
    title = "Circuit openings"
    if frame.is_empty():
        return no_data(title, "No candidate was skipped for an open circuit in the period.")
    chart = (alt.Chart(frame, title=_title(title, "candidates skipped while their circuit was open"))
             .mark_bar()
             .encode(_period_x(grain, frame, span=span), alt.Y("circuit_open_skips:Q", title="Skipped candidates"),
                     alt.Color(f"{by}:N", title=_label(by)),
                     tooltip=[_period_tip(grain), alt.Tooltip(f"{by}:N", title=_label(by)),
                              alt.Tooltip("circuit_open_skips:Q", title="skips", format=COUNT)]))
    return _partial(chart, frame, grain)


def slowest(frame: pl.DataFrame, by: str = "route") -> alt.LayerChart | alt.Chart:
    """The slowest groups by p95: bar to p95, ticks at p50 and p99 (``dashboards.slowest``)."""
    title = f"Slowest {_label(by)}s by p95"
    if frame.is_empty():
        return no_data(title, "No requests in the period.")
    order = frame[by].to_list()
    tips = [alt.Tooltip(f"{by}:N", title=_label(by)), alt.Tooltip("requests:Q", format=COUNT),
            *(alt.Tooltip(f"{p}_ms:Q", title=f"{p} (ms)", format=MS) for p in ("p50", "p95", "p99")),
            alt.Tooltip("error_rate:Q", title="error rate", format=".2%")]
    base = alt.Chart(frame, title=_title(title, "bar: p95 · black tick: p50 · red tick: p99")).encode(
        alt.Y(f"{by}:N", title=_label(by), sort=order), tooltip=tips).properties(height=alt.Step(22))
    return alt.layer(
        base.mark_bar(color=NEUTRAL, opacity=0.8).encode(alt.X("p95_ms:Q", title="Latency (ms)",
                                                               axis=alt.Axis(format=MS))),
        base.mark_tick(color="black", thickness=2).encode(x="p50_ms:Q"),
        base.mark_tick(color=BAD, thickness=2).encode(x="p99_ms:Q"))


# --- quality ----------------------------------------------------------------------------------------------------

def baseline_scores(frame: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Mean baseline score per model per intent as a heat map (columns: model, intent, score, n)."""
    title = "Baseline quality per model and intent"
    if frame.is_empty():
        return no_data(title, "No baseline yet.")
    tips = [alt.Tooltip("model:N"), alt.Tooltip("intent:N"), alt.Tooltip("score:Q", title="mean score", format=".3f"),
            alt.Tooltip("n:Q", title="prompts", format=COUNT)]
    base = alt.Chart(frame, title=_title(title, "mean score on the prompt set (1 = all correct)")).encode(
        alt.X("intent:N", title="intent"), alt.Y("model:N", title="model"), tooltip=tips
    ).properties(width=alt.Step(90), height=alt.Step(28))
    return alt.layer(
        base.mark_rect().encode(alt.Color("score:Q", title="score", scale=alt.Scale(domain=[0, 1], scheme="blues"))),
        base.mark_text(fontSize=11).encode(
            text=alt.Text("score:Q", format=".2f"),
            color=alt.condition("datum.score > 0.6", alt.value("white"), alt.value("black"))))


def shadow_comparison(frame: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Candidate-vs-production win/agreement rate with its confidence interval
    (columns: comparison, rate, low, high, verdict, n)."""
    title = "Shadow comparisons"
    if frame.is_empty():
        return no_data(title, "No shadow comparison yet.")
    tips = [alt.Tooltip("comparison:N"), alt.Tooltip("rate:Q", format=PCT), alt.Tooltip("low:Q", format=PCT),
            alt.Tooltip("high:Q", format=PCT), alt.Tooltip("n:Q", title="pairs", format=COUNT),
            alt.Tooltip("verdict:N")]
    base = alt.Chart(frame, title=_title(title, "candidate vs production; bars: confidence interval")).encode(
        alt.Y("comparison:N", title=None, axis=alt.Axis(labelLimit=360)), tooltip=tips).properties(height=alt.Step(26))
    return alt.layer(
        base.mark_rule(strokeWidth=2).encode(alt.X("low:Q", title="Win / agreement rate (%)",
                                                   axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
                                             x2="high:Q"),
        base.mark_point(filled=True, size=80).encode(
            alt.X("rate:Q", title="Win / agreement rate (%)", axis=alt.Axis(format="%")),
            color=alt.Color("verdict:N", title="verdict")))


def verification(frame: pl.DataFrame, by: str = "model") -> alt.Chart:
    """Verification failure rate per group (``dashboards.verification``)."""
    title = f"Verification failures by {_label(by)}"
    frame = frame.filter(pl.col(by) != "(none)")
    if frame.is_empty() or frame["verification_failures"].sum() == 0:
        return no_data(title, "No answer failed its route's verification in the period.")
    return (alt.Chart(frame, title=_title(title, "answers that failed their route's check"))
            .mark_bar(color=BAD)
            .encode(alt.Y(f"{by}:N", title=_label(by), sort="-x"),
                    alt.X("rate:Q", title="Verification failure rate (%)", axis=alt.Axis(format="%")),
                    tooltip=[alt.Tooltip(f"{by}:N", title=_label(by)), alt.Tooltip("rate:Q", format=".2%"),
                             alt.Tooltip("verification_failures:Q", title="failures", format=COUNT),
                             alt.Tooltip("requests:Q", format=COUNT)])
            .properties(height=alt.Step(22)))


def serves(frame: pl.DataFrame, title: str, empty: str, span: tuple[Any, Any] | None = None) -> alt.Chart:
    """Requests per day per route from a list of serves (``dashboards.degraded_serves`` / ``lower_tier_fallbacks``);
    ``empty`` is the sentence shown when there are none (zero is a finding); ``span``: the period's first and last
    day."""
    if frame.is_empty():
        return no_data(title, empty)
    return (alt.Chart(frame, title=_title(title))
            .mark_bar()
            .encode(_period_x("day", frame, "date", span),
                    alt.Y("sum(requests):Q", title="Requests"),
                    alt.Color("route:N", title="route"),
                    tooltip=[alt.Tooltip("date:T", format="%Y-%m-%d"), alt.Tooltip("route:N"),
                             alt.Tooltip("alias:N", title="served by"), alt.Tooltip("team:N"),
                             alt.Tooltip("requests:Q", format=COUNT)]))


# --- readiness (toolkit/playbook) -----------------------------------------------------------------------------------

EFFECTS = ("unaffected", "fallback", "degraded", "fails")
EFFECT_COLORS = (GOOD, "#9ecae9", "#f58518", BAD)


def _grid(frame: pl.DataFrame, x: str, value: str, domain: tuple[str, ...], colors: tuple[str, ...], title: str,
          subtitle: str, tips: list[alt.Tooltip]) -> alt.LayerChart:
    """Intent x ``x`` cells coloured by a category, the category written in each cell."""
    base = alt.Chart(frame, title=_title(title, subtitle)).encode(
        alt.X(f"{x}:N", title=x.replace("_", " "), axis=alt.Axis(labelAngle=0, orient="top")),
        alt.Y("intent:N", title="intent", sort=None), tooltip=tips,
    ).properties(width=alt.Step(104), height=alt.Step(26))
    return alt.layer(
        base.mark_rect(stroke="white", strokeWidth=2).encode(
            alt.Color(f"{value}:N", title=value, scale=alt.Scale(domain=list(domain), range=list(colors)))),
        base.mark_text(fontSize=11).encode(text=f"{value}:N"))


def blast_radius(frame: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """What happens to each intent when each provider is unavailable (``playbook.Board.blast_grid``: columns
    provider, intent, effect, served_by, requests_per_day...)."""
    title = "Blast radius: each provider unavailable"
    if frame.is_empty():
        return no_data(title, "No hosted provider in the policy.")
    tips = [alt.Tooltip("intent:N"), alt.Tooltip("provider:N", title="without"), alt.Tooltip("effect:N"),
            alt.Tooltip("served_by:N", title="served by")]
    if "requests_per_day" in frame.columns and frame["requests_per_day"].is_not_null().any():
        tips += [alt.Tooltip("requests_per_day:Q", title="requests/day moved", format=",.1f"),
                 alt.Tooltip("monthly_cost_before_usd:Q", title="$/month before", format="$,.2f"),
                 alt.Tooltip("monthly_cost_after_usd:Q", title="$/month after", format="$,.2f")]
    return _grid(frame, "provider", "effect", EFFECTS, EFFECT_COLORS, title,
                 "unaffected: first candidate still serves; fallback: another at the floor; degraded: below it "
                 "(allowed); fails: nothing left", tips)


def readiness(frame: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """The launch checklist, intent x check (``playbook.Readiness.frame``: columns check, intent, ok, detail)."""
    title = "Launch readiness"
    if frame.is_empty():
        return no_data(title, "No route in the policy.")
    frame = frame.with_columns(status=pl.when(pl.col("ok")).then(pl.lit("ok")).otherwise(pl.lit("FAIL")))
    tips = [alt.Tooltip("intent:N"), alt.Tooltip("check:N"), alt.Tooltip("status:N"), alt.Tooltip("detail:N")]
    return _grid(frame, "check", "status", ("ok", "FAIL"), (GOOD, BAD), title,
                 "every check per intent; hover a cell for what was found", tips)


# --- what-if ----------------------------------------------------------------------------------------------------

def scenario_comparison(frame: pl.DataFrame, by: str = "intent") -> alt.LayerChart | alt.Chart:
    """Monthly cost per scenario side by side, stacked by ``by``, with the low-high band of each scenario's total
    (columns: scenario, <by>, monthly_usd, low_usd, high_usd)."""
    title = "Scenarios: projected monthly cost"
    if frame.is_empty():
        return no_data(title, "No scenario to compare.")
    order = list(dict.fromkeys(frame["scenario"].to_list()))
    totals = frame.group_by("scenario").agg(pl.col("monthly_usd").sum(), pl.col("low_usd").sum(),
                                            pl.col("high_usd").sum())
    money = usd(totals["high_usd"], totals["monthly_usd"])
    bars = alt.Chart(frame).mark_bar().encode(
        alt.X("scenario:N", title=None, sort=order, axis=alt.Axis(labelAngle=0)),
        alt.Y("monthly_usd:Q", title="Projected cost per month ($)", axis=alt.Axis(format=money)),
        alt.Color(f"{by}:N", title=_label(by)),
        tooltip=[alt.Tooltip("scenario:N"), alt.Tooltip(f"{by}:N", title=_label(by)),
                 alt.Tooltip("monthly_usd:Q", title="per month", format=money),
                 alt.Tooltip("low_usd:Q", title="low", format=money),
                 alt.Tooltip("high_usd:Q", title="high", format=money)])
    band = alt.Chart(totals).mark_errorbar(ticks=True, color="black").encode(
        alt.X("scenario:N", sort=order), alt.Y("low_usd:Q", title=""), alt.Y2("high_usd:Q"),
        tooltip=[alt.Tooltip("scenario:N"), alt.Tooltip("monthly_usd:Q", title="total per month", format=money),
                 alt.Tooltip("low_usd:Q", title="low", format=money),
                 alt.Tooltip("high_usd:Q", title="high", format=money)])
    return alt.layer(bars, band, title=_title(title, "whiskers: low-high band from the token distributions")
                     ).properties(width=alt.Step(110))


def sensitivity(frame: pl.DataFrame) -> alt.LayerChart | alt.Chart:
    """Projected monthly cost as one driver moves and the rest stay put, one line per driver in one panel
    (``dashboards.sensitivity``: volume, tokens and every price folded into one line when they coincide, and the
    price of each costly model: the steeper its line, the more that vendor's price matters)."""
    title = "Sensitivity: what moves the monthly cost"
    if frame.is_empty():
        return no_data(title, "No scenario to vary.")
    money = usd(frame["monthly_usd"])
    drivers = list(dict.fromkeys(frame["driver"].to_list()))
    line = alt.Chart(frame).mark_line(point=True).encode(
        alt.X("factor:Q", title="Multiplier (1 = as planned)", axis=alt.Axis(format=".2~f")),
        alt.Y("monthly_usd:Q", title="Projected cost per month ($)", axis=alt.Axis(format=money)),
        alt.Color("driver:N", title="multiplied", sort=drivers),
        tooltip=[alt.Tooltip("driver:N"), alt.Tooltip("factor:Q", title="multiplier", format=".2f"),
                 alt.Tooltip("monthly_usd:Q", title="per month", format=money)])
    plan = alt.Chart(pl.DataFrame({"factor": [1.0]})).mark_rule(color="#999", strokeDash=[4, 3]).encode(x="factor:Q")
    return alt.layer(line, plan, title=_title(title, "one driver multiplied, the others as planned; dashed: the plan"))


def what_if_explorer(scenarios: list[Any], prices: Any = None, policy: Any = None, by: str = "intent",
                     month: int = 1, days: int = DAYS_PER_MONTH) -> Any:
    """JupyterLab controls over ``estimate`` scenarios (months of ``days`` days): pick one, move its volume / tokens /
    price multipliers and the split; the side-by-side comparison (every scenario plus the edited one) and the
    sensitivity chart re-render at once. Returns the ipywidgets box; ``box.charts`` holds the charts last drawn.

    A redraw replaces the output widget's outputs in one state update (no SVG: JupyterLab draws the Vega-Lite), so
    the charts change without a flicker and without clear_output, whose messages can stall a headless run."""
    import ipywidgets as w

    from . import dashboards as d

    pick = w.Dropdown(options=[s.name for s in scenarios], description="scenario")
    split = w.Dropdown(options=["intent", "model"], value=by, description="split by")
    knobs = {k: w.FloatSlider(value=1.0, min=0.25, max=3.0, step=0.05, description=f"{k} ×", readout_format=".2f")
             for k in ("volume", "tokens", "price")}
    out = w.Output()
    box = w.VBox([w.HBox([pick, split]), w.HBox(list(knobs.values())), out])
    fixed = estimate_scenarios(scenarios, prices, policy=policy, days=days)

    def draw(*_: Any) -> None:
        base = next(s for s in scenarios if s.name == pick.value)
        edited = d.vary(base, **{k: s.value for k, s in knobs.items()})
        rows = fixed if edited.name == base.name else pl.concat(
            [fixed, estimate_scenarios([edited], prices, policy=policy, days=days)])
        box.charts = (scenario_comparison(d.scenario_costs(rows, split.value, month), split.value),
                      sensitivity(d.sensitivity(edited, prices, policy, month=month, days=days)))
        out.outputs = tuple({"output_type": "display_data", "data": interactive(chart.to_dict()), "metadata": {}}
                            for chart in box.charts)

    for control in (pick, split, *knobs.values()):
        control.observe(draw, names="value")
    draw()
    return box


# --- routing research ---------------------------------------------------------------------------

def frontier_chart(report: dict, title: str = "cost-quality frontier") -> Any:
    """An altair chart of a :func:`frontier_report`: every policy, the frontier line, the oracle."""
    pts = pl.DataFrame([{k: p[k] for k in ("policy", "quality", "cost_per_request_usd", "kind")}
                        for p in report["policies"]] +
                       [{"policy": "oracle", "kind": "oracle", **report["oracle"]}])
    top = max(p["cost_per_request_usd"] for p in report["policies"])
    hull = pl.DataFrame(report["frontier"] + [{**report["frontier"][-1], "cost_per_request_usd": top}])  # R~ flat
    x = alt.X("cost_per_request_usd:Q", title="cost per request (USD)", scale=alt.Scale(zero=False))
    y = alt.Y("quality:Q", title="quality (mean score)", scale=alt.Scale(zero=False))
    dots = alt.Chart(pts).mark_point(filled=True, size=80).encode(
        x, y, color=alt.Color("kind:N", title="policy"), shape="kind:N",
        tooltip=["policy", alt.Tooltip("quality:Q", format=".3f"),
                 alt.Tooltip("cost_per_request_usd:Q", format=".6f")])
    line = alt.Chart(hull).mark_line(color="black", strokeDash=[4, 3]).encode(x, y)
    return (line + dots).properties(title=f"{title} (AIQ {report['aiq']:.3f})", width=520, height=320)


def pgr_chart(report: dict, title: str = "") -> Any:
    """PGR against the share of strong calls, learned router beside the lookup, random and oracle curves."""
    import polars as pl

    pts, strong, weak = report["points"], report["strong"], report["weak"]
    q = {m["policy"]: m["quality"] for m in pts["models"]}
    q_s, q_w = q[strong], q[weak]
    rows = [{"router": name, "strong share": p["strong_share"], "PGR": (p["quality"] - q_w) / (q_s - q_w)}
            for name, key in ((f"{report['router']} (learned)", "router"), ("lookup", "lookup"), ("random", "random"))
            for p in pts.get(key, [])]
    df = pl.DataFrame(rows).sort("router", "strong share")
    apgr = report["apgr"]
    return (alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("strong share:Q", title="share of requests to the strong model", axis=alt.Axis(format="%")),
        y=alt.Y("PGR:Q", title="performance gap recovered"), color=alt.Color("router:N", title=None),
        tooltip=["router", alt.Tooltip("strong share:Q", format=".1%"), alt.Tooltip("PGR:Q", format=".3f")])
        .properties(title=f"{title} PGR vs strong share (APGR {apgr:.3f})".strip() if apgr is not None else title,
                    width=520, height=300))


def trained_frontier_chart(report: dict, title: str = "") -> Any:
    """The cost-quality plane: the learned router's held-out points beside the lookup's, the random router's and
    the single models'; the dashed line is the zero router (the hull of the single models), the title gives the
    learned router's AIQ."""
    from .research.replay import Point, ndch

    pts = report["points"]
    policies = [{**p, "kind": "model" if key == "models" else p["kind"]}
                for key in ("models", "router", "lookup", "random") for p in pts.get(key, [])]
    zero = ndch([Point(m["policy"], m["quality"], m["cost_per_request_usd"]) for m in pts["models"]])
    doc = {"policies": policies, "oracle": {k: pts["oracle"][0][k] for k in ("quality", "cost_per_request_usd")},
           "frontier": [{"policy": p.policy, "quality": p.quality, "cost_per_request_usd": p.cost_per_request_usd}
                        for p in zero], "aiq": report["aiq"]}
    return frontier_chart(doc, title=f"{title} {report['router']} router, held out; dashed: zero router".strip())


def save_all(figures: dict[str, Any], out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """Write each named chart as ``out_dir/<name>.<fmt>`` (for slides and e-mail; the HTML reports embed SVG)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [save(chart, out / f"{name}.{fmt}") for name, chart in figures.items()]
