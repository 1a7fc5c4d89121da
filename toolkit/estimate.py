"""Cost estimates and what-if projections, before a route ships.

Python API (the what-if notebook calls these; every figure names its price-table version)::

    from toolkit.estimate import (Dist, IntentLoad, Scenario, estimate_request, estimate_scenarios,
                                  scenario_totals, load_scenarios, fit_from_log)
    from toolkit.costs import PriceBook

    prices = PriceBook.load()                       # the dated snapshot in data/prices/

    # One request: from messages (tokens counted offline) or from token counts.
    e = estimate_request("gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], output_tokens=200)
    e.cost_usd, e.input_tokens, e.approx, e.price_version

    # Named scenarios, side by side, in one call.
    mini = Scenario.single("mini", "gpt-4o-mini", requests_per_day=10_000, input_tokens=500, output_tokens=200)
    both = Scenario.single("mix", {"gpt-4o-mini": 0.8, "gpt-4.1": 0.2}, requests_per_day=10_000,
                           input_tokens=Dist(500, 150, 1400), output_tokens=[80, 200, 350], cache_hit_rate=0.3)
    rows = estimate_scenarios([mini, both], prices)   # polars DataFrame: scenario x month x intent x model
    scenario_totals(rows)                                   # one row per scenario x month, `relative` to the first

    # A scenario file (data/scenarios/*.yaml) and a fit from a real route log.
    spec = load_scenarios("data/scenarios/three-approaches.yaml")
    rows = estimate_scenarios(spec.scenarios, prices, policy=spec.policy)
    loads = fit_from_log("routelog")                  # {intent: IntentLoad} measured from the records

Model names are litellm model strings (``gpt-4o-mini``, ``gemini/gemini-3.1-pro-preview``) or, when a
``policy`` is given, its aliases (``fast-openai``), which also bring the policy's price overrides.

How the numbers are made
------------------------
- A month is ``days`` (30) days. Month *m* of a scenario has ``requests_per_day × (1 + growth_per_month)^(m-1)``
  requests a day; each intent gets its ``share`` (or its own ``requests_per_day``), each model its share of the
  intent's ``mix``.
- A token count per request is a :class:`Dist`: ``mean`` with ``p10``/``p90`` (one number: all three equal; a
  list of samples: fitted).  ``monthly_usd`` prices every request at the mean tokens; ``low_usd`` / ``high_usd``
  price every request at the p10 / p90 tokens.  The band is a *planning* band for "what if our requests look
  like the short / long ones", not a confidence interval of the monthly sum (over 300k requests that is far
  narrower).
- ``cache_hit_rate`` is the share of input tokens read from the provider's prompt cache (billed at the
  cached-read rate); cache writes are not modelled.  ``batch: true`` uses Batch-API rates where the map has them.
- ``price_changes`` maps a model (or ``"*"``) to a multiplier on all its rates (``0.8`` = 20% cheaper), or to a
  price override like the policy's (``{input_per_mtok: 0.1, output_per_mtok: 0.4}``).
- A self-hosted model priced ``per_hour`` costs ``per_hour × 24 × days`` a month whatever the traffic: it is
  its own row (``kind == "fixed"``) whose ``cost_per_request_usd`` is that cost amortised over the month's
  requests to the model.  Token rows price its tokens (often at 0).
- A model without a price is *unpriced*: its cost columns are null and ``unpriced`` is true; summaries list it
  in ``unpriced_models`` and never count it as $0.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .costs import PriceBook, Rates, Usage
from .errors import BadInput, ScenarioError, YamlError

DAYS_PER_MONTH = 30


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """Tokens per request: mean, 10th and 90th percentile."""

    mean: float
    p10: float
    p90: float

    def __post_init__(self) -> None:
        if min(self.mean, self.p10, self.p90) < 0 or self.p10 > self.p90 or not all(map(math.isfinite, self)):
            raise ValueError(f"need 0 <= p10 <= p90 and mean >= 0, got mean {self.mean}, p10 {self.p10}, "
                             f"p90 {self.p90}")

    def __iter__(self):
        return iter((self.mean, self.p10, self.p90))

    @classmethod
    def of(cls, value: Any) -> "Dist":
        """A number, a list of samples, ``{mean, p10, p90}`` (p10/p90 default to the mean), or a Dist."""
        if isinstance(value, Dist):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(value, value, value)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            return cls.fit(value)
        if isinstance(value, Mapping) and "mean" in value and set(value) <= {"mean", "p10", "p90"}:
            m = value["mean"]
            return cls(m, value.get("p10", m), value.get("p90", m))
        raise ValueError(f"expected a token count, a list of samples or {{mean, p10, p90}}, got {value!r}")

    @classmethod
    def fit(cls, samples: Sequence[float]) -> "Dist":
        s = sorted(float(x) for x in samples)
        return cls(sum(s) / len(s), _quantile(s, 0.1), _quantile(s, 0.9))


def _quantile(s: list[float], q: float) -> float:
    pos = (len(s) - 1) * q  # linear interpolation, like numpy's and polars' "linear"
    lo = math.floor(pos)
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (pos - lo)


@dataclass(frozen=True)
class IntentLoad:
    """The traffic of one intent: how many requests, how big, served by which models."""

    intent: str
    requests_per_day: float
    input_tokens: Dist
    output_tokens: Dist
    mix: Mapping[str, float]          # model -> share of the intent's requests (sums to 1)
    cache_hit_rate: float = 0.0       # share of input tokens read from the prompt cache

    def __post_init__(self) -> None:
        if not 0 <= self.requests_per_day < math.inf:  # (NaN fails every comparison: written so it fails this one)
            raise ValueError(f"intent {self.intent!r}: requests_per_day must be a finite number >= 0 "
                             f"(got {self.requests_per_day})")
        if not 0 <= self.cache_hit_rate <= 1:
            raise ValueError(f"intent {self.intent!r}: cache_hit_rate must be within 0..1")
        if not self.mix or not all(v >= 0 for v in self.mix.values()) or not abs(sum(self.mix.values()) - 1) <= 1e-6:
            raise ValueError(f"intent {self.intent!r}: the model mix {dict(self.mix)} must have shares >= 0 "
                             f"summing to 1")


@dataclass(frozen=True)
class Scenario:
    """A named what-if: traffic per intent, growth, price changes."""

    name: str
    intents: tuple[IntentLoad, ...]
    growth_per_month: float = 0.0     # 0.1 = 10% more requests each month, compounding
    months: int = 1                   # how many months to project
    price_changes: Mapping[str, Any] = field(default_factory=dict)
    batch: bool = False
    description: str | None = None

    def __post_init__(self) -> None:
        if self.months < 1:
            raise ValueError(f"scenario {self.name!r}: months must be >= 1")
        if not -1 < self.growth_per_month < math.inf:
            raise ValueError(f"scenario {self.name!r}: growth_per_month must be a finite number > -1 "
                             f"(got {self.growth_per_month})")

    @classmethod
    def single(cls, name: str, model: str | Mapping[str, float], *, requests_per_day: float,
               input_tokens: Any, output_tokens: Any, intent: str = "all", cache_hit_rate: float = 0.0,
               **kw: Any) -> "Scenario":
        """One intent served by one model (or a ``{model: share}`` mix)."""
        mix = {model: 1.0} if isinstance(model, str) else dict(model)
        load = IntentLoad(intent, requests_per_day, Dist.of(input_tokens), Dist.of(output_tokens), mix,
                          cache_hit_rate)
        return cls(name, (load,), **kw)


# --- one request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestEstimate:
    model: str
    input_tokens: float
    output_tokens: float
    cache_read_tokens: float
    cost_usd: float | None            # None: unpriced
    unpriced: bool
    price_version: str
    rates_source: str
    approx: bool | None = None        # None when the tokens were given, not counted
    tokenizer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def estimate_request(model: str, *, messages: list[dict] | None = None, text: str | None = None,
                     input_tokens: float | None = None, output_tokens: float = 0, cache_read_tokens: float = 0,
                     batch: bool = False, prices: PriceBook | None = None, policy: Any = None) -> RequestEstimate:
    """The cost of one request: give ``messages`` or ``text`` (counted offline) or ``input_tokens``."""
    prices = prices or PriceBook.load()
    policy = _policy(policy)
    label, rates = prices.resolve(model, policy)
    approx = tokenizer = None
    if (messages is None) + (text is None) + (input_tokens is None) != 2:
        raise ValueError("give exactly one of messages, text or input_tokens")
    for name, n in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                    ("cache_read_tokens", cache_read_tokens)):
        if n is not None and not (isinstance(n, (int, float)) and not isinstance(n, bool) and 0 <= n < math.inf):
            raise BadInput(f"{name} must be a finite number of tokens, 0 or more, not {n!r}")
    if input_tokens is None:
        from .tokens import count_messages, count_text

        counted = count_messages(_token_model(model, policy), messages) if messages is not None \
            else count_text(_token_model(model, policy), text)
        input_tokens, approx, tokenizer = counted.tokens, counted.approx, counted.tokenizer
    cost = None if rates is None else rates.cost(
        Usage(input_tokens, output_tokens, cache_read_tokens), batch=batch)[0]
    return RequestEstimate(label, input_tokens, output_tokens, cache_read_tokens, cost, rates is None,
                           prices.version, rates.source if rates else "unpriced", approx, tokenizer)


def _token_model(model: str, policy: Any) -> str:
    """The litellm model string whose tokenizer counts for ``model`` (an alias's model)."""
    if policy is not None and model in policy.models:
        spec = policy.models[model]
        return spec.model or "gpt-4o"
    return model


def _policy(policy: Any) -> Any:
    if policy is None or not isinstance(policy, (str, os.PathLike)):
        return policy
    from .policy import load_policy

    return load_policy(policy)


# --- scenarios ---------------------------------------------------------------------------------

ROW_COLUMNS = ("scenario", "month", "intent", "model", "kind", "rates_source", "requests", "input_tokens",
               "output_tokens", "cache_hit_rate", "cost_per_request_usd", "monthly_usd", "low_usd", "high_usd",
               "unpriced", "price_version")


def estimate_scenarios(scenarios: Iterable[Scenario], prices: PriceBook | None = None, *, policy: Any = None,
                       days: int = DAYS_PER_MONTH):
    """Monthly cost of each scenario per month x intent x model, as a polars DataFrame (:data:`ROW_COLUMNS`).

    ``kind`` is ``"tokens"`` (requests x per-request cost) or ``"fixed"`` (a ``per_hour`` model's monthly
    cost, intent ``"(fixed)"``).  ``requests`` are per month.  Raises
    :class:`~toolkit.costs.UnknownModel` for a name that is neither an alias nor in the snapshot.
    """
    import polars as pl

    if days < 1:
        raise ValueError(f"days in a month must be at least 1, not {days}")
    scenarios = list(scenarios)
    names = [sc.name for sc in scenarios]
    if len(set(names)) < len(names):   # the totals add a scenario's rows up by name
        raise ValueError(f"scenario names must differ: {sorted({n for n in names if names.count(n) > 1})} "
                         "given more than once")
    prices = prices or PriceBook.load()
    policy = _policy(policy)
    rows: list[dict[str, Any]] = []
    for sc in scenarios:
        rates = {m: _rates(m, sc, prices, policy) for load in sc.intents for m in load.mix}
        stray = set(sc.price_changes) - set(rates) - {"*"}
        if stray:
            raise ValueError(f"scenario {sc.name!r}: price_changes name {sorted(stray)}, which no intent's mix "
                             f"uses ({sorted(rates)})")
        for month in range(1, sc.months + 1):
            growth = (1 + sc.growth_per_month) ** (month - 1)
            served: dict[str, float] = {}
            for load in sc.intents:
                for model, share in load.mix.items():
                    r = rates[model]
                    per_day = load.requests_per_day * growth * share
                    requests = per_day * days
                    served[model] = served.get(model, 0.0) + requests
                    cost = [None if r is None else _per_request(r, n_in, n_out, load.cache_hit_rate, sc.batch)
                            for n_in, n_out in zip(load.input_tokens, load.output_tokens)]
                    monthly = [None if c is None else per_day * days * c for c in cost]
                    rows.append(dict(scenario=sc.name, month=month, intent=load.intent, model=model, kind="tokens",
                                     rates_source=r.source if r else "unpriced", requests=requests,
                                     input_tokens=load.input_tokens.mean, output_tokens=load.output_tokens.mean,
                                     cache_hit_rate=load.cache_hit_rate, cost_per_request_usd=cost[0],
                                     monthly_usd=monthly[0], low_usd=monthly[1], high_usd=monthly[2],
                                     unpriced=r is None, price_version=prices.version))
            for model, requests in served.items():
                r = rates[model]
                if r is not None and r.per_hour:
                    fixed = r.per_hour * 24 * days
                    rows.append(dict(scenario=sc.name, month=month, intent="(fixed)", model=model, kind="fixed",
                                     rates_source=f"{r.source}: ${r.per_hour:g}/hour x 24 x {days} days",
                                     requests=requests, input_tokens=None, output_tokens=None, cache_hit_rate=None,
                                     cost_per_request_usd=fixed / requests if requests else None,
                                     monthly_usd=fixed, low_usd=fixed, high_usd=fixed, unpriced=False,
                                     price_version=prices.version))
    schema = {c: pl.Float64 for c in ROW_COLUMNS}
    schema.update(scenario=pl.String, month=pl.Int64, intent=pl.String, model=pl.String, kind=pl.String,
                  rates_source=pl.String, unpriced=pl.Boolean, price_version=pl.String)
    return pl.DataFrame(rows, schema=schema)


def _per_request(r: Rates, n_in: float, n_out: float, hit: float, batch: bool) -> float:
    return r.cost(Usage(n_in, n_out, n_in * hit), batch=batch)[0]


def _rates(model: str, sc: Scenario, prices: PriceBook, policy: Any) -> Rates | None:
    _, rates = prices.resolve(model, policy)
    change = sc.price_changes.get(model, sc.price_changes.get("*"))
    if rates is None or change is None:
        return rates
    if isinstance(change, (int, float)):
        return replace(rates.scaled(float(change)), source=f"{rates.source} x {change:g}")
    from .policy import Price

    return Rates.from_override(Price.model_validate(change))


def scenario_totals(rows) -> Any:
    """One row per scenario x month: requests, monthly / low / high USD, ``unpriced_models``, and ``relative`` =
    monthly_usd / the first scenario's monthly_usd in the same month.

    With unpriced models the USD figures are the priced part only (null when nothing is priced) and
    ``relative`` is null: an incomplete total is never compared as if it were whole.
    """
    import polars as pl

    priced_sum = lambda c: pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum())  # noqa: E731
    out = (rows.group_by(["scenario", "month"], maintain_order=True)
           .agg(pl.col("requests").filter(pl.col("kind") == "tokens").sum(),
                priced_sum("monthly_usd"), priced_sum("low_usd"), priced_sum("high_usd"),
                pl.col("model").filter(pl.col("unpriced")).unique(maintain_order=True).alias("unpriced_models"),
                pl.col("price_version").first()))
    if not out.height:
        return out.with_columns(relative=pl.lit(None, pl.Float64))
    complete = pl.col("unpriced_models").list.len() == 0
    first = (out.filter(pl.col("scenario") == out["scenario"][0])
             .select("month", _base=pl.when(complete).then(pl.col("monthly_usd"))))
    return (out.join(first, on="month", how="left", maintain_order="left")
            .with_columns(relative=pl.when(complete & (pl.col("_base") > 0)).then(pl.col("monthly_usd") / pl.col("_base")))
            .drop("_base"))


# --- fitting from a route log ------------------------------------------------------------------


def fit_from_log(log: Any, *, intents: Sequence[str] | None = None) -> dict[str, IntentLoad]:
    """Measure each intent's traffic from a route log (a directory or a ``scan_log`` frame).

    Served, non-shadow requests only: requests/day (over the days the log covers), input tokens
    (``prompt_tokens``) and output tokens as mean/p10/p90, the mix of served aliases, and the cache
    hit rate (cached-read share of input tokens).  Mixes name policy aliases: price them with ``policy=``.
    """
    import polars as pl

    from .routelog import require_log, scan_log

    frame = scan_log(require_log(log)).frame if isinstance(log, (str, os.PathLike)) else log.lazy()
    served = frame.filter((pl.col("outcome") == "served") & pl.col("shadow_of").is_null())
    if intents is not None:
        served = served.filter(pl.col("intent").is_in(list(intents)))
    days = frame.select(pl.col("timestamp").dt.date().n_unique()).collect().item() or 1
    q = lambda c, p: pl.col(c).quantile(p, "linear")  # noqa: E731
    stats = (served.group_by("intent")
             .agg(pl.len().alias("n"),
                  pl.col("prompt_tokens").mean().alias("in_mean"), q("prompt_tokens", 0.1).alias("in_p10"),
                  q("prompt_tokens", 0.9).alias("in_p90"),
                  pl.col("gen_ai.usage.output_tokens").mean().alias("out_mean"),
                  q("gen_ai.usage.output_tokens", 0.1).alias("out_p10"),
                  q("gen_ai.usage.output_tokens", 0.9).alias("out_p90"),
                  (pl.col("usage.cache_read_tokens").sum()
                   / pl.col("gen_ai.usage.input_tokens").sum().clip(1)).alias("hit"))
             .collect())
    mix = served.group_by("intent", "served_alias").agg(pl.len().alias("n")).collect()
    out: dict[str, IntentLoad] = {}
    for s in stats.sort("intent").iter_rows(named=True):
        shares = {r["served_alias"]: r["n"] / s["n"] for r in mix.filter(pl.col("intent") == s["intent"])
                  .sort("n", descending=True).iter_rows(named=True)}
        out[s["intent"]] = IntentLoad(s["intent"], s["n"] / days, Dist(s["in_mean"], s["in_p10"], s["in_p90"]),
                                      Dist(s["out_mean"], s["out_p10"], s["out_p90"]), shares,
                                      min(max(s["hit"], 0.0), 1.0))
    return out


# --- re-pricing logged requests ----------------------------------------------------------------


def reprice_prompts(model: str, prompts: Sequence[str | list[dict]], output_tokens: Sequence[float], *,
                    prices: PriceBook | None = None, policy: Any = None) -> tuple[list[int], list[float | None], Any]:
    """What each logged prompt would cost on ``model``: its tokens counted with the model's tokenizer
    (in one batch), its output tokens as logged.  Returns (input tokens, costs, the Tokenizer used).

    ``prompts`` are chat message lists or texts; a route record stores them (as JSON) only where the
    route sets ``store_prompts``.
    """
    from .tokens import count_many

    prices = prices or PriceBook.load()
    policy = _policy(policy)
    _, rates = prices.resolve(model, policy)
    counts, tok = count_many(_token_model(model, policy), prompts)
    if rates is None:
        return counts, [None] * len(counts), tok
    cost = rates.cost
    return counts, [cost(Usage(n, o))[0] for n, o in zip(counts, output_tokens)], tok


# --- scenario files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioSet:
    """A loaded scenario file."""

    path: str
    scenarios: tuple[Scenario, ...]
    policy: Any = None                 # the loaded Policy, when the file names one
    days: int = DAYS_PER_MONTH
    description: str | None = None


_FILE_KEYS = {"description", "policy", "days", "from_log", "scenarios"}
_SCENARIO_KEYS = {"description", "model", "mix", "requests_per_day", "input_tokens", "output_tokens", "cache_hit_rate",
                  "growth_per_month", "months", "price_changes", "batch", "intents"}
MAX_SCENARIO_BYTES = 1 << 20
_INTENT_KEYS = {"share", "requests_per_day", "input_tokens", "output_tokens", "cache_hit_rate", "model", "mix"}


def load_scenarios(path: str | os.PathLike, *, policy: Any = None, from_log: str | os.PathLike | None = None
                   ) -> ScenarioSet:
    """Load a scenario file (YAML). Keys other than ``scenarios`` and the file keys are defaults every
    scenario inherits (intents merge key by key). See data/scenarios/three-approaches.yaml."""
    from .yamlfile import read_yaml

    p = Path(path)
    try:
        doc = read_yaml(str(p), p.read_bytes(), max_bytes=MAX_SCENARIO_BYTES, what="a scenario file")
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read: {e.strerror}") from None
    except YamlError as e:
        raise ScenarioError(str(e.problem)) from None
    data = doc.data

    def fail(where: tuple, msg: str):
        raise ScenarioError(f"{p}:{doc.line_of(where) or 1}: {'.'.join(map(str, where)) or '(top)'}: {msg}")

    if doc.duplicates:
        where, first, second = doc.duplicates[0]
        fail(where, f"duplicate key {where[-1]!r} (line {first} and line {second})")

    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), dict) or not data["scenarios"]:
        fail((), "expected a mapping with a non-empty 'scenarios' mapping (name -> settings)")
    _check_keys(data, _FILE_KEYS | _SCENARIO_KEYS, (), fail)
    days = data.get("days", DAYS_PER_MONTH)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        fail(("days",), f"a whole number of days in a month, at least 1 (got {days!r})")
    if policy is None and data.get("policy"):
        try:
            policy = _policy(p.parent / data["policy"])
        except Exception as e:  # noqa: BLE001 — a bad policy is reported against this file
            fail(("policy",), f"cannot load: {e}")
    else:
        policy = _policy(policy)
    log = from_log or (p.parent / data["from_log"] if data.get("from_log") else None)
    fitted = fit_from_log(log) if log else {}
    defaults = {k: v for k, v in data.items() if k in _SCENARIO_KEYS - {"description"}}
    out = []
    for name, body in data["scenarios"].items():
        where = ("scenarios", name)
        if not isinstance(body, dict):
            fail(where, "expected a mapping of scenario settings")
        _check_keys(body, _SCENARIO_KEYS, where, fail)
        merged = {**defaults, **body}
        intents = _merge_intents(defaults.get("intents"), body.get("intents"), fitted)
        try:
            out.append(_scenario(str(name), merged, intents, fitted, where, fail))
        except (ValueError, TypeError) as e:
            fail(where, str(e))
    return ScenarioSet(str(p), tuple(out), policy, days, data.get("description"))


def _check_keys(body: dict, allowed: set[str], where: tuple, fail) -> None:
    for k in body:
        if k not in allowed:
            fail((*where, k), f"unknown key (known: {', '.join(sorted(allowed))})")


def _merge_intents(base: Any, over: Any, fitted: dict[str, IntentLoad]) -> dict[str, dict]:
    names = list(dict.fromkeys([*fitted, *(base or {}), *(over or {})]))
    return {n: {**((base or {}).get(n) or {}), **((over or {}).get(n) or {})} for n in names}


def _scenario(name: str, s: dict, intents: dict[str, dict], fitted: dict[str, IntentLoad], where: tuple,
              fail) -> Scenario:
    if not intents:
        intents = {"all": {}}
    total = s.get("requests_per_day")
    shares = {n: i.get("share") for n, i in intents.items()}
    if any(v is not None for v in shares.values()) and abs(sum(v or 0 for v in shares.values()) - 1) > 1e-6:
        fail((*where, "intents"), f"intent shares {shares} must sum to 1")
    loads = []
    for n, i in intents.items():
        iw = (*where, "intents", n)
        _check_keys(i, _INTENT_KEYS, iw, fail)
        fit = fitted.get(n)
        if i.get("requests_per_day") is not None:
            rpd = i["requests_per_day"]
        elif total is not None and (shares[n] is not None or len(intents) == 1):
            rpd = total * (1.0 if shares[n] is None else shares[n])
        elif fit is not None:
            rpd = fit.requests_per_day
        else:
            fail(iw, "no request volume: give requests_per_day (per scenario with a share per intent, or here)")
        mix = _mix(s.get("mix"), n) or _mix(i.get("mix") or i.get("model"), None) or _mix(s.get("model"), None) \
            or (dict(fit.mix) if fit else None)
        if not mix:
            fail(iw, f"no model for intent {n!r}: give 'model' or 'mix' in the scenario or the intent")
        tokens = {}
        for key in ("input_tokens", "output_tokens"):
            given, at = (i[key], (*iw, key)) if i.get(key) is not None else (s.get(key), (*where, key))
            if given is not None:
                try:
                    tokens[key] = Dist.of(given)
                except ValueError as e:
                    fail(at, str(e))
            elif fit is not None:
                tokens[key] = getattr(fit, key)
            else:
                fail(iw, f"missing {key} (a number, a list of samples or {{mean, p10, p90}})")
        hit = i.get("cache_hit_rate", s.get("cache_hit_rate", fit.cache_hit_rate if fit else 0.0))
        loads.append(IntentLoad(n, float(rpd), tokens["input_tokens"], tokens["output_tokens"], mix, float(hit)))
    changes = s.get("price_changes") or {}
    if not isinstance(changes, dict):
        fail((*where, "price_changes"), "expected {model or '*': multiplier or price override}")
    return Scenario(name, tuple(loads), float(s.get("growth_per_month", 0.0)), int(s.get("months", 1)), changes,
                    bool(s.get("batch", False)), s.get("description"))


def _mix(value: Any, intent: str | None) -> dict[str, float] | None:
    """``model`` | ``{model: share}`` | (per intent) ``{intent: model | {model: share}}``."""
    if intent is not None:
        value = value.get(intent) if isinstance(value, dict) else None
    if value is None:
        return None
    if isinstance(value, str):
        return {value: 1.0}
    if isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
        return {str(k): float(v) for k, v in value.items()}
    raise ValueError(f"a model mix is a model name or {{model: share}}, got {value!r}")


def to_json(rows, summary, **extra: Any) -> str:
    """The --json document: price version, per-scenario summary, per-intent/model rows."""
    version = rows["price_version"][0] if rows.height else None
    return json.dumps({"price_version": version, **extra, "scenarios": summary.to_dicts(),
                       "rows": rows.to_dicts()}, indent=2, default=str)
