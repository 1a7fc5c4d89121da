"""routekit estimate: what a request, or a month of traffic, costs — before a route ships."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..resources import find
from .common import share, whole

ORDER = 40

EXAMPLES = """examples:
  # one request, tokens given or counted offline (the output says when a count is approximate)
  routekit estimate --model gpt-4o-mini --input-tokens 500 --output-tokens 200
  routekit estimate --model anthropic/claude-sonnet-4-6 --prompt "Summarise this contract ..." --output-tokens 400
  routekit estimate --model gpt-4.1 --messages conversation.json --output-tokens 300

  # a month of traffic (30 days): 10k requests/day, tokens as mean or mean:p10:p90 (the low-high band)
  routekit estimate --model gpt-4o-mini --requests-per-day 10000 --input-tokens 500 --output-tokens 200 --json
  routekit estimate --model gpt-4o-mini --model claude-haiku-4-5 --model gemini/gemini-3.5-flash-lite \\
      --requests-per-day 10000 --input-tokens 500:150:1400 --output-tokens 200:50:600 --cache-hit-rate 0.3

  # policy aliases and their price overrides; growth over a quarter
  routekit estimate --policy data/policy.example.yaml --model fast-openai --model strong-anthropic \\
      --requests-per-day 10000 --input-tokens 800 --output-tokens 150 --growth-per-month 0.1 --months 3

  # named scenarios side by side (token distributions, model mix per intent, caching, growth, price changes)
  routekit estimate --scenarios data/scenarios/three-approaches.yaml
  routekit estimate --scenarios data/scenarios/three-approaches.yaml --only tiered,all-strong --json

  # token distributions, volume and model mix fitted from a route log; re-priced on another model
  routekit estimate --from-log routelog --policy data/policy.demo.yaml
  routekit estimate --from-log routelog --model gpt-4o-mini

Every figure names the price-table version it used (a dated snapshot in data/prices/, never fetched).
A model without a price is reported as unpriced, never as $0.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="estimate the cost of a request or a month of traffic (what-if)",
                       description="Estimate what one request costs, or a month (30 days) of traffic: per intent "
                                   "and model, with a low-high band from the token distributions (every request "
                                   "at p10 / p90 tokens). Compare several models (repeat --model) or named "
                                   "scenarios (--scenarios FILE) side by side. Exit 2 on bad input.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="MODEL",
                   help="litellm model string (gpt-4o-mini, gemini/gemini-3.1-pro-preview) or, with --policy, an alias; "
                        "repeat to compare side by side")
    p.add_argument("--policy", default=os.environ.get("ROUTEKIT_POLICY"), type=find,
                   help="policy YAML: lets --model name aliases and applies its price overrides "
                        "(default: $ROUTEKIT_POLICY, else none)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--input-tokens", metavar="N[:P10:P90]", help="input tokens per request (mean, or mean:p10:p90)")
    what.add_argument("--prompt", help="count the input tokens of this text (as one user message)")
    what.add_argument("--messages", metavar="FILE", help="count the input tokens of a JSON list of chat messages")
    p.add_argument("--output-tokens", metavar="N[:P10:P90]", default="0", help="output tokens per request (default 0)")
    p.add_argument("--requests-per-day", type=float, help="project a month of traffic at this volume")
    p.add_argument("--cache-hit-rate", type=share, default=0.0, help="share of input tokens read from the prompt "
                                                                     "cache (0..1, default 0)")
    p.add_argument("--growth-per-month", type=float, default=0.0, help="monthly request growth, e.g. 0.1 = +10%%")
    p.add_argument("--months", type=whole, default=1, help="months to project (default 1)")
    p.add_argument("--days", type=whole, help="days in a month (default 30, or the scenario file's days)")
    p.add_argument("--batch", action="store_true", help="price at Batch-API rates where the price map has them")
    p.add_argument("--scenarios", metavar="FILE", type=find, help="YAML file of named scenarios (see data/scenarios/)")
    p.add_argument("--only", help="with --scenarios: comma-separated scenario names to run")
    p.add_argument("--from-log", metavar="DIR", help="fit requests/day, token distributions, model mix and cache hit "
                                                     "rate per intent from a route log")
    p.add_argument("--prices", metavar="FILE", type=find, help="price snapshot (default: $ROUTEKIT_PRICES, else "
                                                               "the newest shipped in data/prices/)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..costs import PriceBook, UnknownModel
    from ..estimate import ScenarioError
    from ..policy import PolicyError

    try:
        prices = PriceBook.load(args.prices)
        return _run(args, prices)
    except (UnknownModel, ScenarioError, PolicyError, ValueError, OSError) as e:
        print(f"routekit estimate: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, prices) -> int:
    from ..estimate import (DAYS_PER_MONTH, Dist, Scenario, estimate_request, estimate_scenarios, fit_from_log,
                            load_scenarios, scenario_totals, to_json)
    from ..policy import load_policy

    policy = load_policy(args.policy) if args.policy else None
    if args.scenarios:
        spec = load_scenarios(args.scenarios, policy=policy, from_log=args.from_log)
        scenarios = spec.scenarios
        if args.only:
            wanted = [n.strip() for n in args.only.split(",") if n.strip()]
            unknown = sorted(set(wanted) - {s.name for s in scenarios})
            if unknown:
                raise ValueError(f"--only names unknown scenarios {unknown}; {spec.path} has "
                                 f"{[s.name for s in scenarios]}")
            scenarios = tuple(s for s in scenarios if s.name in wanted)
        days = args.days or spec.days
        return _report(estimate_scenarios(scenarios, prices, policy=spec.policy, days=days), args,
                       title=spec.description or spec.path, days=days)

    days = args.days or DAYS_PER_MONTH
    models = list(dict.fromkeys(args.model))   # a model named twice is one scenario, not two added up
    if args.from_log:
        loads = fit_from_log(args.from_log)
        if not loads:
            raise ValueError(f"{args.from_log}: no served requests to fit")
        from dataclasses import replace

        runs = [(m, tuple(replace(ld, mix={m: 1.0}) for ld in loads.values())) for m in models] or \
               [("as logged", tuple(loads.values()))]
        scenarios = [Scenario(name, intents, args.growth_per_month, args.months, batch=args.batch)
                     for name, intents in runs]
        return _report(estimate_scenarios(scenarios, prices, policy=policy, days=days), args,
                       title=f"fitted from {args.from_log}", days=days)

    if not models:
        raise ValueError("give --model (repeatable), --scenarios FILE or --from-log DIR; see --help")
    output = Dist.of(_tokens(args.output_tokens, "--output-tokens"))
    counted: dict[str, object] = {}
    if args.input_tokens is not None:
        inputs = {m: Dist.of(_tokens(args.input_tokens, "--input-tokens")) for m in models}
    elif args.prompt is not None or args.messages is not None:
        messages = ([{"role": "user", "content": args.prompt}] if args.prompt is not None
                    else _read_messages(args.messages))
        counted = {m: estimate_request(m, messages=messages, prices=prices, policy=policy) for m in models}
        inputs = {m: Dist.of(e.input_tokens) for m, e in counted.items()}
    else:
        raise ValueError("give the input size: --input-tokens N, --prompt TEXT or --messages FILE")

    if args.requests_per_day is None:
        from dataclasses import replace

        estimates = []
        for m in models:
            e = estimate_request(m, input_tokens=inputs[m].mean, output_tokens=output.mean,
                                 cache_read_tokens=inputs[m].mean * args.cache_hit_rate, batch=args.batch,
                                 prices=prices, policy=policy)
            estimates.append(replace(e, approx=counted[m].approx, tokenizer=counted[m].tokenizer) if m in counted else e)
        _print_requests(estimates, prices.version, args.json)
        return 0
    scenarios = [Scenario.single(m, m, requests_per_day=args.requests_per_day, input_tokens=inputs[m],
                                 output_tokens=output, cache_hit_rate=args.cache_hit_rate,
                                 growth_per_month=args.growth_per_month, months=args.months, batch=args.batch)
                 for m in models]
    rows = estimate_scenarios(scenarios, prices, policy=policy, days=days)
    tokens = {m: {"input_tokens": e.input_tokens, "approx": e.approx, "tokenizer": e.tokenizer}
              for m, e in counted.items()}
    if args.json:
        print(to_json(rows, scenario_totals(rows), days_per_month=days, counted_tokens=tokens or None))
        return 0
    for m, e in counted.items():
        print(f"{m}: {e.input_tokens} input tokens counted with {e.tokenizer}")
    return _report(rows, args, title=f"{args.requests_per_day:g} requests/day", days=days)


def _report(rows, args: argparse.Namespace, *, title: str, days: int) -> int:
    from ..estimate import scenario_totals, to_json

    summary = scenario_totals(rows)
    if args.json:
        print(to_json(rows, summary, days_per_month=days))
        return 0
    version = rows["price_version"][0] if rows.height else "-"
    print(f"{title}\nprices: {version}   month = {days} days   band = every request at p10 / p90 tokens\n")
    _table(["scenario", "month", "requests", "monthly $", "low $", "high $", "relative", "unpriced"],
           [[s["scenario"], s["month"], _num(s["requests"]), *(_usd(s[c]) + ("+?" if s["unpriced_models"] else "")
                                                               for c in ("monthly_usd", "low_usd", "high_usd")),
             "-" if s["relative"] is None else f"{s['relative']:.2f}x", ", ".join(s["unpriced_models"]) or "-"]
            for s in summary.iter_rows(named=True)])
    if any(summary["unpriced_models"].list.len() > 0):
        print("+? = the priced part only: the unpriced models' cost is unknown (add a price override to the policy)")
    print()
    _table(["scenario", "month", "intent", "model", "requests", "in tok", "out tok", "$/request", "monthly $",
            "low $", "high $"],
           [[r["scenario"], r["month"], r["intent"], r["model"], _num(r["requests"]), _num(r["input_tokens"]),
             _num(r["output_tokens"]), _usd(r["cost_per_request_usd"], 6),
             "unpriced" if r["unpriced"] else _usd(r["monthly_usd"]), _usd(r["low_usd"]), _usd(r["high_usd"])]
            for r in rows.iter_rows(named=True)])
    return 0


def _print_requests(estimates, version: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"price_version": version, "requests": [e.to_dict() for e in estimates]}, indent=2))
        return
    print(f"prices: {version}\n")
    _table(["model", "input tok", "output tok", "cached tok", "$/request", "tokenizer", "rates"],
           [[e.model, _num(e.input_tokens), _num(e.output_tokens), _num(e.cache_read_tokens),
             "unpriced" if e.unpriced else _usd(e.cost_usd, 8), e.tokenizer or "(given)", e.rates_source]
            for e in estimates])
    if any(e.approx for e in estimates):
        print("\n(approx) = the model's own tokenizer is not available offline; the count is an approximation")


def _tokens(value: str, flag: str):
    try:
        parts = [float(x) for x in value.split(":")]
    except ValueError:
        raise ValueError(f"{flag} {value!r}: expected N or MEAN:P10:P90") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 3:
        return {"mean": parts[0], "p10": parts[1], "p90": parts[2]}
    raise ValueError(f"{flag} {value!r}: expected N or MEAN:P10:P90")


def _read_messages(path: str) -> list[dict]:
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not (isinstance(data, list) and all(isinstance(m, dict) and "role" in m for m in data)):
        raise ValueError(f"{path}: expected a JSON list of chat messages like [{{\"role\": \"user\", \"content\": "
                         f"\"...\"}}]")
    return data


def _usd(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _num(v) -> str:
    return "-" if v is None else f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.1f}"


def _table(headers: list[str], rows: list[list]) -> None:
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    text = [any(r[i][:1].isalpha() and r[i] not in ("unpriced",) for r in cells[1:]) for i in range(len(headers))]
    for n, r in enumerate(cells):
        print("  ".join(c.ljust(w) if text[i] else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
