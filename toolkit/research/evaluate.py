"""Honest evaluation of a trained router on an outcome table, with the simple baselines beside it.

* **Split by prompt.**  k-fold cross-validation over prompts (seeded): features (the TF-IDF vocabulary)
  and router are fitted on k-1 folds and predict the held-out fold, so every prompt gets a prediction from
  a router that never saw it.  Where the table has an intent (domain) column with more than one value, a
  leave-one-domain-out split says how the router does on a kind of prompt it has never seen.
* **The same metrics as the frontier** (:mod:`.replay`), computed on the pooled held-out predictions:
  for a strong/weak pair RouteLLM's APGR, CPT(50 %), CPT(80 %) on the threshold sweep; for any number of
  models RouterBench's AIQ over the cost range of the single models, beside the zero router's (the hull of
  the single models, which is what random mixing reaches).
* **Intervals.**  A percentile bootstrap over prompts (``bootstrap`` resamples, seeded), the same
  resample for every method, so a difference between the router and a baseline has its own interval.
* **Baselines, always:** the random router (RouteLLM's; its APGR is the mean over 20 seeds, its interval
  one seed per resample), the best single model, the per-intent lookup table (cross-validated like the
  router: each model's mean score per intent on the training folds), and the oracle.
* **Calibration** to a :class:`~.calibrate.Target`, with its held-out error (see :mod:`.calibrate`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import SetupError
from .calibrate import Target, reached, select
from .features import cache_dir, cache_file, make
from .replay import (Outcomes, Point, aiq, choice_point, oracle, pair_metrics, random_router_curve, single,
                     threshold_curve)
from .routers import PAIR_ROUTERS, ROUTERS, IntentLookup, Rule, predictor

RANDOM_SEEDS = 20


@dataclass(frozen=True)
class Setup:
    router: str = "linear"
    features: str = "tfidf"
    cv: int = 5
    seed: int = 0
    strong: str | None = None
    weak: str | None = None
    bootstrap: int = 1000
    lodo: bool = True


def default_pair(o: Outcomes, strong: str | None = None, weak: str | None = None) -> tuple[str, str]:
    """Strong: the best-quality model (cheaper among equals); weak: the cheapest other one."""
    points = {m: single(o, m) for m in o.models}
    strong = strong or max(points, key=lambda m: (points[m].quality, -points[m].cost_per_request_usd))
    weak = weak or min((m for m in points if m != strong), key=lambda m: points[m].cost_per_request_usd)
    o.col(strong), o.col(weak)   # unknown names: a clear error
    if strong == weak:
        raise SetupError(f"strong and weak model are both {strong!r}")
    return strong, weak


def kfold(n: int, k: int, seed: int) -> Any:
    """Fold number of each of n prompts: a seeded shuffle dealt into k folds."""
    import numpy as np

    ids = np.empty(n, dtype=int)
    ids[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return ids


def subset(o: Outcomes, idx: Any) -> Outcomes:
    """The table restricted to (or resampled at) prompt rows ``idx``."""
    return replace(o, prompt_ids=[o.prompt_ids[i] for i in idx], intents=[o.intents[i] for i in idx],
                   score=o.score[idx], cost=o.cost[idx], columns={k: v[idx] for k, v in o.columns.items()},
                   dropped_prompts=0)


@dataclass
class CrossFit:
    """Held-out values of one predictor for every prompt, and the training mean cost beside each."""

    values: Any       # n x len(cols)
    unit_cost: Any    # n x len(cols): the mean cost per model on the training part that predicted the row
    folds: Any = None

    def ranked(self) -> "CrossFit":
        """For the pair rule's curve: each prompt's gain as its rank within its own fold (ties share a rank).

        RouteLLM sweeps thresholds over the quantiles of one router's scores; pooled over k routers (one per
        fold) raw gains are on k slightly different scales, and a lookup table's per-intent means differ from
        fold to fold, so pooled thresholds would split one intent by fold, at random.  Ranks within the fold
        make the sweep each fold's own, pooled."""
        import numpy as np

        gain = self.values[:, 0] - self.values[:, 1]
        rank = np.zeros(len(gain))
        for j in np.unique(self.folds):
            rows = np.flatnonzero(self.folds == j)
            g = gain[rows]
            lower = np.searchsorted(np.sort(g), g, side="left")
            upper = np.searchsorted(np.sort(g), g, side="right")
            rank[rows] = (lower + upper) / 2 / len(rows)   # mid-rank: tied prompts stay tied
        return CrossFit(np.column_stack([rank, np.zeros(len(rank))]), self.unit_cost, self.folds)


@dataclass
class Trained:
    """What :func:`train` returns: the report (``routekit research train --json``) and what emission needs."""

    report: dict
    setup: Setup
    o: Outcomes
    texts: list[str]
    rule: Rule
    strong: str | None
    router: CrossFit
    lookup: CrossFit
    target: Target | None
    folds: Any = None
    # with a target: the operating point chosen for each fold (on its training part), per method, and
    # the model column each prompt got from its fold's calibrated router / lookup table
    fold_params: dict[str, list[float]] = field(default_factory=dict)
    calibrated: dict[str, Any] = field(default_factory=dict)

    def training_rows(self, fold: int) -> Any:
        import numpy as np

        return np.flatnonzero(self.folds != fold)

    def fit_fold(self, fold: int) -> tuple[Any, Any]:
        """Features and predictor fitted exactly as for held-out ``fold`` (deterministic, seeded)."""
        rows = self.training_rows(fold)
        feat = make(self.setup.features)
        X = feat.fit([self.texts[i] for i in rows]).transform([self.texts[i] for i in rows])
        model = predictor(self.setup.router, self.setup.seed).fit(X, self.o.score[rows][:, list(self.rule.cols)])
        return feat, model

    def fold_result(self, method: str, fold: int = 0) -> dict:
        """What ``method``'s calibrated operating point ("router" or "lookup") reached on the prompts of
        ``fold``, which neither it nor its calibration saw, with bootstrap intervals over those prompts."""
        import numpy as np

        rows = np.flatnonzero(self.folds == fold)
        sub, chosen = subset(self.o, rows), self.calibrated[method][rows]
        one = {method: lambda s, idx, b: [choice_point(s, method, chosen[idx])]}
        _, ci, _ = _estimate(sub, one, None, None, self.setup.bootstrap, self.setup.seed)
        p = choice_point(sub, method, chosen)
        return {"prompts": len(rows), **reached(p, self.target, self.strong or ""), "share": p.share,
                "quality_ci": ci[method].get("quality"), "cost_per_request_usd_ci": ci[method].get("cost")}

    def lookup_fold(self, fold: int) -> IntentLookup:
        rows = self.training_rows(fold)
        return IntentLookup().fit([self.o.intents[i] for i in rows], self.o.score[rows][:, list(self.rule.cols)])


def train(o: Outcomes, texts: list[str], setup: Setup, *, target: Target | None = None, source: str = "",
          cache: bool | Path = True, progress: bool = False) -> Trained:
    """Cross-validate ``setup.router`` on the outcome table ``o`` (prompt ``texts`` in its row order)."""
    import numpy as np
    from tqdm.auto import tqdm

    if setup.router not in ROUTERS:
        raise SetupError(f"unknown router {setup.router!r} (use {', '.join(ROUTERS)})")
    if not 2 <= setup.cv <= o.n:
        raise SetupError(f"--cv {setup.cv}: need 2 to {o.n} folds for {o.n} prompts")
    if len(o.models) < 2:
        raise SetupError(f"{o.source}: one model only ({o.models[0]}): nothing to route between")
    pair_router = setup.router in PAIR_ROUTERS
    has_pair = pair_router or len(o.models) == 2 or bool(setup.strong and setup.weak)   # a strong model to count
    strong, weak = default_pair(o, setup.strong, setup.weak) if has_pair else (None, None)
    if target is not None and target.strong_share is not None and strong is None:
        raise SetupError("--target-strong-share needs a strong model: give --strong and --weak")
    mean_cost = o.cost.mean(axis=0)
    if pair_router:
        rule = Rule.pair(o.col(strong), o.col(weak))
    else:
        cols = tuple(range(len(o.models)))
        rule = Rule.cost_rule(cols, mean_cost[list(cols)])
    cols = list(rule.cols)
    pair = (strong, weak) if rule.kind == "pair" else (None, None)   # APGR/CPT: the threshold sweep spans 0..1

    feat = make(setup.features)
    if setup.features == "embed":
        root = cache if isinstance(cache, Path) else None
        feat.preload(texts, cache_file("embed", texts, source or o.source, root) if cache else None)

    def fit_router(train_idx: Any, test_idx: Any) -> Any:
        X = feat.fit([texts[i] for i in train_idx]).transform([texts[i] for i in train_idx])
        model = predictor(setup.router, setup.seed).fit(X, o.score[train_idx][:, cols])
        return model.predict(feat.transform([texts[i] for i in test_idx]))

    def fit_lookup(train_idx: Any, test_idx: Any) -> Any:
        lookup = IntentLookup().fit([o.intents[i] for i in train_idx], o.score[train_idx][:, cols])
        return lookup.predict([o.intents[i] for i in test_idx])

    folds = kfold(o.n, setup.cv, setup.seed)
    domains = sorted({i for i in o.intents if i})
    lodo = setup.lodo and len(domains) > 1
    inner_k = 3
    total = setup.cv * (1 + (inner_k if target else 0)) + (len(domains) if lodo else 0)
    bar = tqdm(total=total, desc=f"{setup.router}/{setup.features} fits", disable=not progress, leave=False)

    def cross_fit(fit: Callable, ids: Any, rows: Any = None, count: bool = True) -> CrossFit:
        rows = np.arange(o.n) if rows is None else rows
        values = np.zeros((len(rows), len(cols)))
        unit_cost = np.zeros((len(rows), len(cols)))
        for j in np.unique(ids):
            tr, te = rows[ids != j], np.flatnonzero(ids == j)
            values[te] = fit(tr, rows[te])
            unit_cost[te] = o.cost[tr][:, cols].mean(axis=0)
            bar.update(count)
        return CrossFit(values, unit_cost, ids)

    router_cv = cross_fit(fit_router, folds)
    lookup_cv = cross_fit(fit_lookup, folds, count=False)
    report: dict[str, Any] = {"router": setup.router, "features": setup.features, "cv": setup.cv, "n": o.n,
                              "seed": setup.seed, "models": o.models, "strong": strong, "weak": weak,
                              "rule": rule.kind}
    methods = _methods(rule, *_for_curves(rule, router_cv, lookup_cv), setup.router, *pair)
    calib = None
    if target is not None:
        calib, fold_params = {}, {}
        for name, fit, cv in (("router", fit_router, router_cv), ("lookup", fit_lookup, lookup_cv)):
            chosen = np.zeros(o.n, dtype=int)
            fold_params[name] = []
            for j in range(setup.cv):
                tr, te = np.flatnonzero(folds != j), np.flatnonzero(folds == j)
                inner = (cross_fit(fit, kfold(len(tr), inner_k, setup.seed + 1 + j), rows=tr) if name == "router"
                         else _in_sample_lookup(o, tr, cols))
                param = select(subset(o, tr), rule, inner.values, inner.unit_cost, target, strong)
                fold_params[name].append(param)
                chosen[te] = rule.choose(cv.values[te], cv.unit_cost[te], param)
            calib[name] = chosen
        methods["calibrated"] = lambda sub, idx, b: [choice_point(sub, "router", calib["router"][idx])]
        methods["calibrated_lookup"] = lambda sub, idx, b: [choice_point(sub, "lookup", calib["lookup"][idx])]
    est, ci, diffs = _estimate(o, methods, *pair, setup.bootstrap, setup.seed)
    report.update(_flat(est["router"], ci["router"]))
    report["baselines"] = _baselines(o, est, ci, *pair)
    report["vs_lookup"] = {f"{k}_diff": est["router"].get(k) - est["lookup"].get(k)
                           if _num(est["router"].get(k), est["lookup"].get(k)) else None for k in ("apgr", "aiq")}
    report["vs_lookup"].update({f"{k}_diff_ci": diffs.get(("router", "lookup", k)) for k in ("apgr", "aiq")})
    report["points"] = _points(o, rule, *_for_curves(rule, router_cv, lookup_cv), setup.router, strong, weak)
    trained = Trained(report, setup, o, texts, rule, strong, router_cv, lookup_cv, target, folds)
    if target is not None:
        out = {"target": target.to_dict(), "held_out": {}}
        for name, key in (("router", "calibrated"), ("lookup", "calibrated_lookup")):
            p = choice_point(o, name, calib[name])
            out["held_out"][name] = {**reached(p, target, strong or ""),
                                     "quality_ci": ci[key].get("quality"),
                                     "cost_per_request_usd_ci": ci[key].get("cost"),
                                     "share": p.share}
        out["quality_diff"] = out["held_out"]["router"]["quality"] - out["held_out"]["lookup"]["quality"]
        out["quality_diff_ci"] = diffs.get(("calibrated", "calibrated_lookup", "quality"))
        report["calibration"] = out
        trained.fold_params, trained.calibrated = fold_params, calib
    else:
        report["calibration"] = None
    if lodo:
        ids = np.array([domains.index(i) if i else -1 for i in o.intents])
        lodo_methods = {k: f for k, f in _methods(rule, cross_fit(fit_router, ids), cross_fit(fit_lookup, ids, count=False),
                                                  setup.router, *pair).items() if k in ("router", "lookup")}
        l_est, l_ci, _ = _estimate(o, lodo_methods, *pair, setup.bootstrap, setup.seed)
        report["lodo"] = {"domains": len(domains), "router": _flat(l_est["router"], l_ci["router"]),
                          "lookup": _flat(l_est["lookup"], l_ci["lookup"])}
    else:
        report["lodo"] = None
    bar.close()
    return trained


def trained_report(o: Outcomes, texts: list[str], setup: Setup, *, cache: bool | Path = True) -> dict:
    """``train(o, texts, setup).report``, kept on disk (``cache``: a folder, else the features' cache folder) under
    the content of the table and prompts, the setup and this package's research code: a report notebook retrains
    only when one of them changed (training is most of its time)."""
    if not cache:
        return train(o, texts, setup, cache=False).report
    import numpy as np

    h = hashlib.sha256(json.dumps([o.models, o.prompt_ids, o.intents, texts, repr(setup)]).encode())
    for array in (o.score, o.cost):
        h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    for code in sorted(Path(__file__).parent.glob("*.py")):
        h.update(code.read_bytes())
    path = (cache if isinstance(cache, Path) else cache_dir()) / f"report-{setup.router}-{h.hexdigest()[:16]}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):   # not there yet, or torn by a crash: train again
        pass
    report = train(o, texts, setup, cache=cache).report
    text = json.dumps(report, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError:   # a read-only cache costs time, never the report
        pass
    return json.loads(text)


def _in_sample_lookup(o: Outcomes, rows: Any, cols: list[int]) -> CrossFit:
    """The lookup table's own values on the prompts it was fitted on.  Calibration picks the lookup's operating
    point from these: a table of per-intent means barely overfits, and its values tie within an intent, so
    a threshold moves whole intents (cross-fitted means differ from fold to fold and would split them)."""
    import numpy as np

    values = IntentLookup().fit([o.intents[i] for i in rows], o.score[rows][:, cols]).predict([o.intents[i] for i in rows])
    return CrossFit(values, np.broadcast_to(o.cost[rows][:, cols].mean(axis=0), values.shape))


# --- metrics and the bootstrap -----------------------------------------------------------------------------------


def _for_curves(rule: Rule, *fits: CrossFit) -> list[CrossFit]:
    """k-fold pair curves sweep ranks within folds (:meth:`CrossFit.ranked`); the cost rule's lambdas are
    absolute, and a held-out domain is ranked against the others as it is (raw values)."""
    return [f.ranked() if rule.kind == "pair" else f for f in fits]


def _methods(rule: Rule, router: CrossFit, lookup: CrossFit, name: str, strong: str | None,
             weak: str | None) -> dict[str, Callable]:
    methods: dict[str, Callable] = {
        "router": lambda sub, idx, b: rule.curve(sub, router.values[idx], router.unit_cost[idx], name),
        "lookup": lambda sub, idx, b: rule.curve(sub, lookup.values[idx], lookup.unit_cost[idx], "lookup", "lookup"),
        "zero_router": lambda sub, idx, b: [single(sub, m) for m in sub.models],
    }
    if strong is not None:
        methods["random"] = lambda sub, idx, b: random_router_curve(sub, strong, weak, seed=b)
    return methods


def _metrics(sub: Outcomes, points: list[Point], strong: str | None, weak: str | None) -> dict[str, float | None]:
    costs = sub.cost.mean(axis=0)
    out: dict[str, float | None] = {"aiq": aiq(points, float(costs.min()), float(costs.max()))}
    if len(points) == 1:   # a single operating point: its quality and cost
        out.update(quality=points[0].quality, cost=points[0].cost_per_request_usd)
    if strong is not None and len(points) > 1:
        q_s, q_w = single(sub, strong).quality, single(sub, weak).quality
        shares = {p.share.get(strong, 0.0) for p in points}
        if q_s != q_w and len(shares) > 1:   # APGR needs a gap to recover and a range of shares to average over
            m = pair_metrics(sub, strong, weak, points)
            out.update(apgr=m["apgr"], cpt50=m["cpt_50"], cpt80=m["cpt_80"])
        else:
            out.update(apgr=None, cpt50=None, cpt80=None)
    return out


def _estimate(o: Outcomes, methods: dict[str, Callable], strong: str | None, weak: str | None, B: int,
              seed: int) -> tuple[dict, dict, dict]:
    """Point estimates on all prompts, percentile intervals over ``B`` resamples of the prompts, and the
    intervals of paired differences (router - lookup, calibrated router - calibrated lookup)."""
    import numpy as np

    every = np.arange(o.n)
    est = {name: _metrics(o, f(o, every, 0), strong, weak) for name, f in methods.items()}
    if "random" in methods:   # the random router's estimate: the mean over seeds
        runs = [_metrics(o, random_router_curve(o, strong, weak, seed=s), strong, weak) for s in range(RANDOM_SEEDS)]
        est["random"] = {k: _mean([r[k] for r in runs]) for k in runs[0]}
    rng = np.random.default_rng([seed, 7919])
    samples: dict[str, dict[str, list]] = {name: {} for name in methods}
    for b in range(B):
        idx = rng.integers(0, o.n, o.n)
        sub = subset(o, idx)
        for name, f in methods.items():
            for k, v in _metrics(sub, f(sub, idx, b + 1), strong, weak).items():
                samples[name].setdefault(k, []).append(v)
    ci = {name: {k: _interval(v) for k, v in s.items()} for name, s in samples.items()}
    diffs = {}
    for a, b_ in (("router", "lookup"), ("calibrated", "calibrated_lookup")):
        if a in samples and b_ in samples:
            for k in samples[a]:
                pairs = [(x, y) for x, y in zip(samples[a][k], samples[b_][k]) if _num(x, y)]
                diffs[(a, b_, k)] = _interval([x - y for x, y in pairs]) if pairs else None
    return est, ci, diffs


def _num(*xs: Any) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _interval(xs: list) -> list[float | None] | None:
    """The 2.5 and 97.5 percentiles; a CPT that was never reached counts as beyond every share (None)."""
    import numpy as np

    if not xs:
        return None
    arr = np.array([np.inf if x is None else x for x in xs], dtype=float)
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return None
    lo, hi = np.percentile(arr, [2.5, 97.5], method="inverted_cdf")   # sample values: inf stays inf
    return [float(v) if np.isfinite(v) else None for v in (lo, hi)]


def _flat(est: dict, ci: dict) -> dict:
    out = {}
    for k in ("apgr", "cpt50", "cpt80", "aiq"):
        out[k] = est.get(k)
        out[f"{k}_ci"] = ci.get(k)
    return out


def _baselines(o: Outcomes, est: dict, ci: dict, strong: str | None, weak: str | None) -> dict:
    best = max(o.models, key=lambda m: (single(o, m).quality, -single(o, m).cost_per_request_usd))
    b = single(o, best)
    orc = oracle(o)
    out = {
        "best_single": {"model": best, "quality": b.quality, "cost_per_request_usd": b.cost_per_request_usd},
        "lookup": {**_flat(est["lookup"], ci["lookup"]), "intents": len({i for i in o.intents if i})},
        "oracle": {"quality": orc.quality, "cost_per_request_usd": orc.cost_per_request_usd},
        "zero_router": {"aiq": est["zero_router"]["aiq"], "aiq_ci": ci["zero_router"].get("aiq")},
    }
    if strong is None:   # random mixes of the models reach exactly the zero router's hull
        out["random"] = {"aiq": est["zero_router"]["aiq"], "aiq_ci": ci["zero_router"].get("aiq")}
    else:
        out["random"] = {**_flat(est["random"], ci["random"]), "seeds": RANDOM_SEEDS}
        gain = o.score[:, o.col(strong)] - o.score[:, o.col(weak)]   # the oracle's own threshold router
        out["oracle"]["apgr"] = pair_metrics(o, strong, weak, threshold_curve(o, gain, strong, weak))["apgr"]
    return out


def _points(o: Outcomes, rule: Rule, router: CrossFit, lookup: CrossFit, name: str, strong: str | None,
            weak: str | None) -> dict:
    """Every point of the held-out curves, for charts (share = the strong model's share, when a pair)."""
    def rows(points: list[Point]) -> list[dict]:
        return [{"policy": p.policy, "kind": p.kind, "quality": p.quality,
                 "cost_per_request_usd": p.cost_per_request_usd,
                 "strong_share": p.share.get(strong, 0.0) if strong else None} for p in points]

    every = slice(None)
    out = {"router": rows(rule.curve(o, router.values[every], router.unit_cost[every], name)),
           "lookup": rows(rule.curve(o, lookup.values[every], lookup.unit_cost[every], "lookup", "lookup")),
           "models": rows([single(o, m) for m in o.models]), "oracle": rows([oracle(o)])}
    if strong is not None:
        out["random"] = rows(random_router_curve(o, strong, weak, seed=0))
    return out
