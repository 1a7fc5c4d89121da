"""From research to policy: write what training found as a routekit policy a person can read.

* When the learned router's held-out quality at the calibrated operating point is **better than the
  per-intent lookup table's** (the paired bootstrap interval of the difference, over every prompt of the
  cross-validation, lies above 0), the policy's routes carry a ``router:`` block (:mod:`.learned`) and the
  router is written to ``routers/<name>/<version>.npz`` beside the policy (version = the file's sha256, so a
  retrained router is a new path, and the block names the one it was checked with).
* Otherwise the policy is the **lookup table**: one route per intent whose primary is the model the table
  chooses at the calibrated operating point - no model file, nothing to run.

Either way the policy is the one cross-validation built for its first fold: fitted and calibrated on the
other k-1 folds, so its expected quality and cost are *measured* on prompts it never saw.  Those prompts'
ids go to ``<policy stem>.heldout.txt``, and ``routekit research frontier TABLE --policy P --only-prompts
<that file>`` replays the policy on them through the Router's own code: it reproduces the figures in the
policy's comments (which also give the pooled k-fold estimates, over every prompt, for both kinds).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .evaluate import Trained
from .features import describe
from .learned import FORMAT, model_bytes, version_of
from .replay import read_table, single


def _yaml(value: Any) -> str:
    if isinstance(value, float):
        return (".inf" if value > 0 else "-.inf") if math.isinf(value) else repr(value)
    return json.dumps(value)   # a JSON string or list is valid YAML


def aliases(models: list[str]) -> dict[str, str]:
    """A short, readable alias per table model: its last path part, lower-cased ("mixtral-8x7b-instruct-v0.1")."""
    out: dict[str, str] = {}
    for m in models:
        base = re.sub(r"[^a-z0-9.\-]+", "-", m.rsplit("/", 1)[-1].lower()).strip("-") or "model"
        alias, n = base, 2
        while alias in out.values():
            alias, n = f"{base}-{n}", n + 1
        out[m] = alias
    return out


def model_entries(table: str, models: list[str]) -> dict[str, str]:
    """The policy's ``models:`` entry per table model (inside the braces): the litellm model string - the
    table's ``price_key`` when it has one, else the name - and, for a name the price snapshot does not know,
    a ``price:`` fitted to the table's own costs (cost = a x input_tokens + b x output_tokens, least squares;
    exact when the table was priced per token), so ``routekit policy check`` can price every model."""
    import numpy as np
    import polars as pl

    from ..costs import PriceBook

    df = read_table(table).with_columns(pl.col("model").cast(pl.String))
    book = PriceBook.load()
    out = {}
    for m in models:
        rows = df.filter(pl.col("model") == m)
        key = rows["price_key"].drop_nulls().first() if "price_key" in df.columns else None
        entry = f"model: {_yaml(str(key or m))}"
        if book.lookup(str(key or m)) is None and {"input_tokens", "output_tokens"} <= set(df.columns):
            X = rows.select("input_tokens", "output_tokens").cast(pl.Float64).to_numpy()
            y = rows["cost_usd"].cast(pl.Float64).to_numpy()
            ok = ~(np.isnan(X).any(axis=1) | np.isnan(y))
            if ok.sum() >= 2:
                a, b = (max(0.0, float(v)) * 1e6 for v in np.linalg.lstsq(X[ok], y[ok], rcond=None)[0])
                entry += (f", price: {{input_per_mtok: {a:.6g}, output_per_mtok: {b:.6g}, "
                          f"note: \"fitted to the costs in {Path(table).name}\"}}")
        out[m] = entry
    return out


def _ci(ci: Any, fmt: str) -> str:
    return f"[{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci and None not in ci else "[n/a]"


def emit_policy(trained: Trained, out: str | Path, *, table: str, command: str) -> dict:
    """Write the policy (and, for a router, its model file); return what was written and the held-out figures."""
    from ..policy import load_policy

    r, o, rule = trained.report, trained.o, trained.rule
    cal = r["calibration"]
    if cal is None:
        raise ValueError("emitting a policy needs a calibration target")
    diff_ci = cal["quality_diff_ci"]
    kind = "router" if diff_ci and diff_ci[0] is not None and diff_ci[0] > 0 else "lookup"
    out = Path(out)
    models = [o.models[c] for c in rule.cols]
    alias = aliases(models)
    entry = model_entries(table, models)
    quality = {m: single(o, m).quality for m in models}
    cost = {m: single(o, m).cost_per_request_usd for m in models}
    by_quality = sorted(models, key=lambda m: -quality[m])
    mean_cost = o.cost[:, list(rule.cols)].mean(axis=0)
    name = f"{Path(table).stem}-{r['router']}-{r['features']}"

    held = cal["held_out"]
    mine = trained.fold_result(kind, 0)
    heldout = out.with_name(out.stem + ".heldout.txt")
    label = {"router": f"learned router ({r['router']}, {r['features']})", "lookup": "per-intent lookup table"}

    def figures(h: dict) -> str:
        return (f"quality {h['quality']:.4f} {_ci(h['quality_ci'], '{:.4f}')}, cost per request "
                f"${h['cost_per_request_usd']:.6g} {_ci(h['cost_per_request_usd_ci'], '${:.6g}')}, "
                f"strong share {h['strong_share']:.3f} (error {h['error']:+.4g})")

    lines = [f"# routekit policy written by: {command}",
             f"# from {o.n} prompts of {table} ({', '.join(models)}); target {trained.target.describe()}.",
             f"# THIS POLICY ({label[kind]}, fitted and calibrated on {o.n - mine['prompts']} prompts) on the "
             f"{mine['prompts']} prompts it never saw ({heldout.name}), 95% bootstrap intervals:",
             f"#   {figures(mine)}",
             f"# {r['cv']}-fold cross-validation over all {o.n} prompts (operating point chosen on each training part):"]
    for who in ("router", "lookup"):
        lines.append(f"#   {label[who]}: {figures(held[who])}")
    lines.append(f"#   router - lookup quality: {cal['quality_diff']:+.4f} {_ci(diff_ci, '{:+.4f}')} -> "
                 + ("the learned router is better: routes carry its router: block"
                    if kind == "router" else "the lookup table is as good: a plain route table"))
    if r.get("apgr") is not None:
        lines.append(f"#   APGR {r['apgr']:.3f} {_ci(r['apgr_ci'], '{:.3f}')}, CPT(50%) "
                     f"{r['cpt50']:.3f}, random router APGR {r['baselines']['random']['apgr']:.3f}")
    lines.append(f"#   AIQ {r['aiq']:.4f} (zero router {r['baselines']['zero_router']['aiq']:.4f})")
    lines.append(f"# Replay: routekit research frontier {table} --policy {out} --only-prompts {heldout}")
    lines += ["version: 1", f"description: {_yaml(f'{kind} policy trained on {Path(table).name}')}", "", "models:"]
    for tier, m in enumerate(sorted(models, key=lambda m: quality[m]), 1):
        lines.append(f"  {_yaml(alias[m])}: {{{entry[m]}, tier: {min(tier, 10)}}}"
                     f"   # mean score {quality[m]:.4f}, ${cost[m]:.6g} per request")
    lines += ["", "routes:"]
    intents = sorted({i or "default" for i in o.intents})
    result: dict[str, Any] = {"kind": kind, "policy": str(out), "held_out_prompts": str(heldout), "held_out": mine}
    if kind == "router":
        feat, model = trained.fit_fold(0)
        param = trained.fold_params["router"][0]
        meta = {"format": FORMAT, "name": name, "router": r["router"], "predictor": model.name,
                "features": describe(r["features"]), "models": models, "rule": rule.kind,
                "trained_on": o.n - mine["prompts"],
                "seed": r["seed"], "source": Path(table).name}
        arrays = {**{f"feat.{k}": v for k, v in feat.state().items()},
                  **{f"model.{k}": v for k, v in model.arrays().items()}, "mean_cost": mean_cost}
        data = model_bytes(meta, arrays)
        version = version_of(data)
        rel = Path("routers") / name / f"{version}.npz"
        (out.parent / rel).parent.mkdir(parents=True, exist_ok=True)
        (out.parent / rel).write_bytes(data)
        first = models[0] if rule.kind == "pair" else by_quality[0]
        rule_line = (f"      threshold: {_yaml(float(param))}   # {alias[models[0]]} when predicted score gain over "
                     f"{alias[models[1]]} >= this" if rule.kind == "pair" else
                     f"      cost_weight: {_yaml(float(param))}   # argmax predicted score - cost_weight * mean cost")
        for n, intent in enumerate(intents):
            lines += [f"  {_yaml(intent)}:", f"    primary: {_yaml(alias[first])}",
                      f"    fallbacks: {_yaml([alias[m] for m in by_quality if m != first])}"]
            if n:
                lines.append("    router: *learned")
                continue
            lines += ["    router: &learned", f"      name: {_yaml(name)}",
                      f"      version: {_yaml(version)}   # sha256 of the file, first 12 hex digits",
                      f"      file: {_yaml(rel.as_posix())}",
                      f"      models: {_yaml([alias[m] for m in models])}", rule_line]
        result.update(model_file=str(out.parent / rel), version=version, param=float(param))
    else:
        lookup, param = trained.lookup_fold(0), trained.fold_params["lookup"][0]
        for intent in intents:
            key = None if intent == "default" and None in o.intents else intent
            values = lookup.predict([key])
            pick = models[list(rule.cols).index(int(rule.choose(values, mean_cost, param)[0]))]
            n = sum(1 for i in trained.training_rows(0) if (o.intents[i] or "default") == intent)
            means = ", ".join(f"{alias[m]} {v:.3f}" for m, v in zip(models, values[0]))
            lines += [f"  {_yaml(intent)}:   # mean score on its {n} training prompts: {means}"
                      if n else f"  {_yaml(intent)}:   # no training prompt: the overall means {means}",
                      f"    primary: {_yaml(alias[pick])}",
                      f"    fallbacks: {_yaml([alias[m] for m in by_quality if m != pick])}"]
        result["param"] = float(param)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    heldout.write_text("".join(o.prompt_ids[i] + "\n" for i in range(o.n) if trained.folds[i] == 0), encoding="utf-8")
    load_policy(out)   # what we wrote must pass `routekit policy check` (raises PolicyError otherwise)
    return result
