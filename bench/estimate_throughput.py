"""Estimates per second over logged requests, routekit vs a plain litellm loop, in one run.

Writes N route records whose prompts were stored (a route with ``store_prompts``) to a real route
log, reads them back with ``scan_log``, then re-prices every request on one model two ways:

- routekit: ``toolkit.estimate.reprice_prompts`` (messages parsed, tokens counted in one batch with the
  model's tokenizer, priced from the snapshot);
- plain: for each request ``litellm.token_counter`` then ``litellm.cost_per_token``.

Both parse the same JSON prompts; the script checks that both give the same token counts and costs,
then prints both rates and their ratio.

    .venv/bin/python bench/estimate_throughput.py [--n 100000] [--model gpt-4o-mini]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("invoice refund order shipping delayed customer account password reset the a to of and please can you "
         "help me with my charge twice last week urgent summary report quarterly revenue risk contract clause "
         "renewal terms payment overdue thanks regards team support billing product feature bug crash error "
         "log stack trace python function list dedupe keep order fast").split()
SYSTEMS = ["You are a support triage assistant. Answer with one label.",
           "Extract the invoice number, date and total as JSON.",
           "You are a careful analyst. Summarise for an executive audience."]


def synth_log(root: Path, n: int, seed: int = 0) -> None:
    """N records with stored prompts over 7 days, through the real writer."""
    from toolkit.routelog import RouteLogWriter

    rng = random.Random(seed)
    writer = RouteLogWriter(root)
    by_day: dict[str, list[str]] = {}
    for i in range(n):
        words = max(3, int(rng.lognormvariate(math.log(60), 0.9)))
        messages = [{"role": "system", "content": rng.choice(SYSTEMS)},
                    {"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(words))}]
        day = f"2026-11-{17 + i % 7:02d}"
        rec = {"schema_version": 1, "request_id": f"r{i}", "timestamp": f"{day}T12:00:00.000000Z",
               "intent": rng.choice(["triage", "extraction", "synthesis"]), "outcome": "served",
               "gen_ai.usage.output_tokens": rng.randint(5, 400), "prompt": json.dumps(messages), "source": "synth"}
        by_day.setdefault(day, []).append(json.dumps(rec))
    for day, lines in by_day.items():
        writer.write_lines(day, lines)
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--model", default="gpt-4o-mini", help="litellm model string to re-price on")
    args = ap.parse_args()

    from tqdm import tqdm

    from toolkit.costs import PriceBook
    from toolkit.estimate import reprice_prompts
    from toolkit.routelog import scan_log
    from toolkit.tokens import tokenizer_for

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        synth_log(Path(tmp), args.n)
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        frame = scan_log(tmp).frame.select("prompt", "gen_ai.usage.output_tokens").collect()
        t_read = time.perf_counter() - t
    prompts = frame["prompt"].to_list()
    outputs = frame["gen_ai.usage.output_tokens"].to_list()
    prices = PriceBook.load()
    tok = tokenizer_for(args.model)

    import litellm

    litellm.disable_hf_tokenizer_download = True
    reprice_prompts(args.model, [json.loads(p) for p in prompts[:100]], outputs[:100], prices=prices)  # warm-up
    litellm.token_counter(model=tok.model, messages=json.loads(prompts[0]))

    t = time.perf_counter()
    counts, costs, _ = reprice_prompts(args.model, [json.loads(p) for p in prompts], outputs, prices=prices)
    t_ours = time.perf_counter() - t

    plain_counts, plain_costs = [], []
    t = time.perf_counter()
    for p, o in tqdm(zip(prompts, outputs), total=len(prompts), desc="plain litellm loop", unit="req", leave=False):
        n = litellm.token_counter(model=tok.model, messages=json.loads(p))
        a, b = litellm.cost_per_token(model=tok.model, prompt_tokens=n, completion_tokens=o)
        plain_counts.append(n)
        plain_costs.append(a + b)
    t_plain = time.perf_counter() - t

    assert counts == plain_counts, "token counts differ"
    worst = max(abs(x - y) / y for x, y in zip(costs, plain_costs) if y)
    assert worst < 1e-9, f"costs differ (worst relative {worst})"
    print(f"{len(prompts):,} logged requests re-priced on {args.model} ({tok.label}), prices {prices.version}")
    print(f"  log: written in {t_write:.2f} s, read with scan_log in {t_read:.2f} s (not in the rates below)")
    print(f"  routekit reprice_prompts:                  {len(prompts) / t_ours:>10,.0f} estimates/s  ({t_ours:.2f} s)")
    print(f"  litellm token_counter + cost_per_token:    {len(prompts) / t_plain:>10,.0f} estimates/s  "
          f"({t_plain:.2f} s)")
    print(f"  ratio: {t_plain / t_ours:.1f}x   (same token counts; costs equal to within {worst:.1e} relative; "
          f"total ${sum(costs):,.2f})")


if __name__ == "__main__":
    main()
