r"""Routing research: replay routing policies over real outcome tables and draw the cost-quality frontier.

Outcome tables
==============
Long form, one row per (prompt, model): ``prompt_id``, ``model``, ``score`` (higher is better, usually
in [0, 1]), ``cost_usd``; optional ``latency_ms``, ``tokens``, ``intent``, an ``error`` column (a row
with an error scores 0; with an ``attempts`` column, a row of 0 attempts - a call never made - is
dropped) and any numeric columns (router scores, token counts: usable by threshold routers).  CSV, JSON Lines or Parquet (by suffix).  ``routekit eval baseline`` writes this shape.
Every policy is evaluated on the prompts answered by *every* model, so all numbers compare the same
prompts; *quality* is the mean score over them and *cost* the mean cost per request.

Policies (each gives one point: quality, cost per request, share of requests per model)
---------------------------------------------------------------------------------------
* single model ``m``: its own mean score and cost;
* static route table: intent -> model;
* random mix: model ``m`` with probability ``p_m`` (expected values, or one seeded draw);
* cascade (RouterBench): call models cheapest first; accept an answer when the verifier says so (score
  >= threshold, or a truthy verifier column), a verifier that errs with probability ``error_rate``
  (seeded); the answer kept is the last model's, the cost is the sum over every model called;
* threshold router (RouteLLM): per-prompt router score ``w`` (e.g. a predicted strong-model win
  rate); route to the strong model when ``w >= t``; sweeping ``t`` over the quantiles of ``w`` traces a
  curve;
* the oracle: per prompt, the cheapest of the models with the best score on that prompt (an upper
  bound, not a deployable router).

RouterBench (Hu et al., 2024, arXiv:2403.12031)
-----------------------------------------------
Mixing two routers at random reaches every point of the segment between them, so the reachable set is
the convex hull of the evaluated points.  The *non-decreasing convex hull* R~ is its upper boundary
from the cheapest point up to the best-quality point (cheapest among equals), extended flat to the
right: for a budget c, R~(c) is the best quality any mix with expected cost <= c reaches.

    AIQ = 1 / (c_max - c_min) * integral from c_min to c_max of R~(c) dc

with [c_min, c_max] the cost range of the points (one point: AIQ = its quality).  RouterBench's own
script divides the integral by c_max instead of (c_max - c_min); the two agree when c_min = 0.

RouteLLM (Ong et al., 2024, arXiv:2406.18665), for a strong/weak pair
---------------------------------------------------------------------
For a router that sends a share ``s`` of requests to the strong model and reaches quality ``q(s)``:

    PGR(s)  = (q(s) - q_weak) / (q_strong - q_weak)                 performance gap recovered
    APGR    = integral over s of PGR(s) ds  (s in [0, 1])           average PGR, trapezoid over the
              = (AUC - q_weak) / (q_strong - q_weak),  AUC = integral of q(s) ds   points of the curve
    CPT(x%) = the smallest share s with PGR(s) >= x%                call-performance threshold,
              (linear interpolation between curve points)           e.g. CPT(50%)

A random router (``w`` uniform, RouteLLM's ``random`` router) has E[PGR(s)] = s, so APGR = 0.5.
RouteLLM's curve: thresholds at the 0, 1/B, ..., 1 quantiles of ``w`` (B = 10 bins), strong when
``w >= t`` except ``w > t`` at the top threshold, so the curve spans s = 1 ... 0.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import BadInput, OutcomeTableError

REQUIRED = ("prompt_id", "model", "score", "cost_usd")


# --- loading -----------------------------------------------------------------------------------------


def read_table(path: str | os.PathLike) -> Any:
    """A CSV, JSON Lines or Parquet file as a polars DataFrame (by suffix)."""
    import polars as pl

    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(p)
        if suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(p, infer_schema_length=None)
        if suffix in (".csv", ".tsv"):
            return pl.read_csv(p, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=None)
    except FileNotFoundError:
        raise OutcomeTableError(f"{p}: no such file") from None
    except Exception as e:  # noqa: BLE001 — the reader's message, with the file named
        raise OutcomeTableError(f"{p}: cannot read as {suffix[1:]}: {str(e).splitlines()[0]}") from None
    raise OutcomeTableError(f"{p}: unknown table format {suffix!r} (use .csv, .jsonl or .parquet)")


@dataclass
class Outcomes:
    """An outcome table as aligned matrices: rows = prompts answered by every model, columns = models."""

    models: list[str]
    prompt_ids: list[str]
    intents: list[str | None]
    score: Any                          # np.ndarray (prompts x models)
    cost: Any                           # np.ndarray (prompts x models)
    columns: dict[str, Any] = field(default_factory=dict)   # other numeric columns, prompts x models
    dropped_prompts: int = 0            # prompts some model did not answer
    source: str = ""

    @property
    def n(self) -> int:
        return len(self.prompt_ids)

    def col(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise OutcomeTableError(f"{self.source}: no model {model!r} (models: {', '.join(self.models)})") from None

    def per_prompt(self, column: str) -> Any:
        """A numeric column as one value per prompt (the mean over models, for per-model values)."""
        import numpy as np

        if column not in self.columns:
            raise OutcomeTableError(f"{self.source}: no numeric column {column!r} "
                                    f"(have: {', '.join(sorted(self.columns)) or 'none'})")
        return np.nanmean(self.columns[column], axis=1)


def load_outcomes(table: Any, source: str = "") -> Outcomes:
    """Validate a long-form outcome table (a path or a polars DataFrame) and align it by prompt and model.

    Raises :class:`OutcomeTableError` naming the file, the line and the column of each problem."""
    import polars as pl

    if isinstance(table, (str, os.PathLike)):
        source = source or str(table)
        table = read_table(table)
    source = source or "outcome table"
    line_of = _line_numbers(source)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise OutcomeTableError(f"{source}: missing column(s) {missing}; an outcome table needs "
                                f"{list(REQUIRED)} (have {table.columns})")
    df = table.with_row_index("_row")
    if "error" in df.columns:  # a failed call is a wrong answer; what it cost is what it cost
        if "attempts" in df.columns:  # a call never made (a boundary refusal) is no outcome at all
            df = df.filter(pl.col("error").is_null() | (pl.col("attempts") > 0))
        failed = pl.col("error").is_not_null()
        df = df.with_columns(score=pl.when(failed).then(0.0).otherwise(pl.col("score")),
                             cost_usd=pl.when(failed & pl.col("cost_usd").is_null()).then(0.0)
                             .otherwise(pl.col("cost_usd")))
    df = df.with_columns(pl.col("prompt_id").cast(pl.String), pl.col("model").cast(pl.String),
                         _score=pl.col("score").cast(pl.Float64, strict=False),
                         _cost=pl.col("cost_usd").cast(pl.Float64, strict=False))
    problems = []
    for col, bad in (("prompt_id", pl.col("prompt_id").is_null()), ("model", pl.col("model").is_null()),
                     ("score", pl.col("_score").is_null() | pl.col("_score").is_nan()),
                     ("cost_usd", pl.col("_cost").is_null() | pl.col("_cost").is_nan() | (pl.col("_cost") < 0))):
        rows = df.filter(bad)["_row"].to_list()
        if rows:
            where = ", ".join(line_of(r) for r in rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
            problems.append(f"{source}: {col}: missing or not a valid number at {where}")
    dupes = df.filter(pl.struct("prompt_id", "model").is_duplicated())
    if len(dupes):
        r = dupes.row(0, named=True)
        problems.append(f"{source}: ({r['prompt_id']!r}, {r['model']!r}) appears {len(dupes)} times in all "
                        f"(first at {line_of(r['_row'])}); one row per prompt and model")
    if problems:
        raise OutcomeTableError("\n".join(problems))

    models = sorted(df["model"].unique().to_list())
    per_prompt = df.group_by("prompt_id").agg(pl.len().alias("k"))
    complete = per_prompt.filter(pl.col("k") == len(models))["prompt_id"].sort()
    if not len(complete):
        raise OutcomeTableError(f"{source}: no prompt was answered by every model ({', '.join(models)})")
    df = df.filter(pl.col("prompt_id").is_in(complete.implode()))
    numeric = [c for c, t in df.schema.items() if t.is_numeric() and not c.startswith("_") and
               c not in ("score", "cost_usd")]

    def matrix(col: str) -> Any:
        wide = df.pivot(on="model", index="prompt_id", values=col, aggregate_function=None).sort("prompt_id")
        return wide.select(models).cast(pl.Float64).to_numpy()

    intents: list[str | None] = [None] * len(complete)
    if "intent" in df.columns:
        intents = (df.group_by("prompt_id").agg(pl.col("intent").cast(pl.String).drop_nulls().first())
                   .sort("prompt_id")["intent"].to_list())
    return Outcomes(models=models, prompt_ids=complete.to_list(), intents=intents, score=matrix("_score"),
                    cost=matrix("_cost"), columns={c: matrix(c) for c in numeric},
                    dropped_prompts=len(per_prompt) - len(complete), source=source)


def _line_numbers(source: str):
    suffix = Path(source).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return lambda row: f"line {row + 2}"      # after the header line
    if suffix in (".jsonl", ".ndjson"):
        return lambda row: f"line {row + 1}"
    return lambda row: f"row {row + 1}"


# --- policies ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    policy: str
    quality: float
    cost_per_request_usd: float
    share: dict[str, float] = field(default_factory=dict)   # requests answered by each model
    kind: str = "policy"

    def to_dict(self) -> dict:
        return {"policy": self.policy, "quality": self.quality, "cost_per_request_usd": self.cost_per_request_usd,
                "share": self.share, "kind": self.kind}


def _point(o: Outcomes, name: str, chosen: Any, kind: str, cost: Any = None) -> Point:
    """Quality/cost of answering prompt i with model chosen[i] (cost: override per prompt)."""
    import numpy as np

    rows = np.arange(o.n)
    q = float(o.score[rows, chosen].mean())
    c = float((o.cost[rows, chosen] if cost is None else cost).mean())
    share = {m: float((chosen == j).mean()) for j, m in enumerate(o.models) if (chosen == j).any()}
    return Point(name, q, c, share, kind)


def choice_point(o: Outcomes, name: str, chosen: Any, kind: str = "policy") -> Point:
    """The point of any per-prompt choice: prompt i answered by model column ``chosen[i]``."""
    return _point(o, name, chosen, kind)


def single(o: Outcomes, model: str) -> Point:
    import numpy as np

    return _point(o, model, np.full(o.n, o.col(model)), "model")


def static_routes(o: Outcomes, table: dict[str, str], default: str, name: str = "static") -> Point:
    """Each prompt's intent picks its model; intents not in the table go to ``default``."""
    import numpy as np

    chosen = np.array([o.col(table.get(i or "", default)) for i in o.intents])
    return _point(o, name, chosen, "static")


def random_mix(o: Outcomes, weights: dict[str, float], seed: int | None = None, name: str | None = None) -> Point:
    """Model m with probability weights[m]: the expected point, or one seeded draw if ``seed`` is given."""
    import numpy as np

    total = sum(weights.values())
    probs = {m: w / total for m, w in weights.items()}
    name = name or "random(" + ", ".join(f"{m}:{p:.2f}" for m, p in probs.items()) + ")"
    if seed is None:
        q = sum(p * o.score[:, o.col(m)].mean() for m, p in probs.items())
        c = sum(p * o.cost[:, o.col(m)].mean() for m, p in probs.items())
        return Point(name, float(q), float(c), probs, "random")
    rng = np.random.default_rng(seed)
    chosen = rng.choice([o.col(m) for m in probs], size=o.n, p=list(probs.values()))
    return _point(o, name, chosen, "random")


def oracle(o: Outcomes) -> Point:
    """Per prompt, the cheapest model among those with the best score on it."""
    import numpy as np

    best = o.score.max(axis=1, keepdims=True)
    cost = np.where(o.score == best, o.cost, np.inf)
    return _point(o, "oracle", cost.argmin(axis=1), "oracle")


def cascade(o: Outcomes, models: list[str] | None = None, *, threshold: float | None = None,
            verifier: str | None = None, error_rate: float = 0.0, seed: int = 0, name: str | None = None) -> Point:
    """Cheapest first; stop at the first answer the verifier accepts (see the module docstring)."""
    import numpy as np

    if (threshold is None) == (verifier is None):
        raise ValueError("a cascade needs exactly one of threshold= (on the score) or verifier= (a column)")
    if not 0 <= error_rate <= 1:
        raise BadInput(f"the verifier's error rate is a share within 0..1, not {error_rate}")
    order = [o.col(m) for m in (models or sorted(o.models, key=lambda m: o.cost[:, o.col(m)].mean()))]
    if verifier is None:
        accept = o.score >= threshold
    elif verifier in o.columns:
        accept = np.nan_to_num(o.columns[verifier]) != 0
    else:
        raise OutcomeTableError(f"{o.source}: no verifier column {verifier!r}")
    rng = np.random.default_rng(seed)
    wrong = rng.random((o.n, len(order))) < error_rate   # the verifier errs: accepts a bad, rejects a good answer
    chosen = np.full(o.n, order[-1])
    paid = np.zeros(o.n)
    open_ = np.ones(o.n, dtype=bool)
    for k, j in enumerate(order):
        paid[open_] += o.cost[open_, j]
        chosen[open_] = j
        ok = accept[:, j] ^ wrong[:, k]
        open_ &= ~ok
    label = name or "cascade(" + " > ".join(o.models[j] for j in order) + \
        (f", score>={threshold:g}" if verifier is None else f", {verifier}") + \
        (f", verifier error {error_rate:g}" if error_rate else "") + ")"
    return _point(o, label, chosen, "cascade", cost=paid)


def threshold_curve(o: Outcomes, router_score: Any, strong: str, weak: str, bins: int = 10,
                    name: str = "threshold", kind: str = "threshold") -> list[Point]:
    """RouteLLM's threshold sweep: strong when router_score >= t, t at the 0..1 quantiles (B bins)."""
    import numpy as np

    if bins < 1:
        raise BadInput(f"a threshold sweep needs at least 1 bin, not {bins}")
    w = np.asarray(router_score, dtype=float)
    s, k = o.col(strong), o.col(weak)
    points = []
    thresholds = np.quantile(w, np.linspace(0, 1, bins + 1))
    for i, t in enumerate(thresholds):
        to_strong = (w >= t) if i < len(thresholds) - 1 else (w > t)
        points.append(_point(o, f"{name}(t={t:.4g})", np.where(to_strong, s, k), kind))
    return points


def random_router_curve(o: Outcomes, strong: str, weak: str, seed: int = 0, bins: int = 10) -> list[Point]:
    """RouteLLM's ``random`` router: a uniform random score per prompt, swept like any threshold router."""
    import numpy as np

    return threshold_curve(o, np.random.default_rng(seed).random(o.n), strong, weak, bins, "random", "random")


# --- frontier, AIQ -------------------------------------------------------------------------------------


def ndch(points: Iterable[Point]) -> list[Point]:
    """RouterBench's non-decreasing convex hull: the hull's vertices from the cheapest point up to the best."""
    best_at: dict[float, Point] = {}
    for p in points:
        if p.cost_per_request_usd not in best_at or p.quality > best_at[p.cost_per_request_usd].quality:
            best_at[p.cost_per_request_usd] = p
    hull: list[Point] = []
    for p in sorted(best_at.values(), key=lambda p: p.cost_per_request_usd):
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:   # not a clockwise turn: not upper hull
            hull.pop()
        hull.append(p)
    top = max(range(len(hull)), key=lambda i: (hull[i].quality, -i)) if hull else -1
    return hull[:top + 1]


def _cross(o: Point, a: Point, b: Point) -> float:
    return ((a.cost_per_request_usd - o.cost_per_request_usd) * (b.quality - o.quality)
            - (a.quality - o.quality) * (b.cost_per_request_usd - o.cost_per_request_usd))


def hull_quality(hull: list[Point], cost: float) -> float:
    """R~(cost): the hull interpolated, flat after its best point, 0 below its cheapest point."""
    if not hull or cost < hull[0].cost_per_request_usd:
        return 0.0
    for a, b in zip(hull, hull[1:]):
        if cost <= b.cost_per_request_usd:
            f = (cost - a.cost_per_request_usd) / (b.cost_per_request_usd - a.cost_per_request_usd)
            return a.quality + f * (b.quality - a.quality)
    return hull[-1].quality


def aiq(points: Iterable[Point], c_min: float | None = None, c_max: float | None = None) -> float:
    """RouterBench's AIQ: the mean of R~ over [c_min, c_max] (default: the points' cost range)."""
    pts = list(points)
    hull = ndch(pts)
    lo = min(p.cost_per_request_usd for p in pts) if c_min is None else c_min
    hi = max(p.cost_per_request_usd for p in pts) if c_max is None else c_max
    if hi <= lo:
        return hull_quality(hull, hi)
    start = max(lo, hull[0].cost_per_request_usd)  # R~ is 0 below the cheapest point: no area there
    if start >= hi:
        return 0.0
    xs = sorted({start, hi, *(p.cost_per_request_usd for p in hull if start < p.cost_per_request_usd < hi)})
    # R~ is linear between consecutive xs, so the trapezoid rule is exact
    area = sum((b - a) * (hull_quality(hull, a) + hull_quality(hull, b)) / 2 for a, b in zip(xs, xs[1:]))
    return area / (hi - lo)


# --- RouteLLM metrics ----------------------------------------------------------------------------------


def pgr(quality: float, q_strong: float, q_weak: float) -> float:
    return (quality - q_weak) / (q_strong - q_weak)


def _curve(points: Iterable[Point], strong: str) -> list[tuple[float, float]]:
    return sorted((p.share.get(strong, 0.0), p.quality) for p in points)


def apgr(points: Iterable[Point], strong: str, q_strong: float, q_weak: float) -> float:
    """Average PGR over the strong-call share, by the trapezoid rule over the curve's points."""
    curve = _curve(points, strong)
    width = curve[-1][0] - curve[0][0]
    auc = sum((s2 - s1) * (q1 + q2) / 2 for (s1, q1), (s2, q2) in zip(curve, curve[1:]))
    return (auc - q_weak * width) / ((q_strong - q_weak) * width)


def cpt(points: Iterable[Point], strong: str, q_strong: float, q_weak: float, x: float) -> float | None:
    """The smallest strong-call share reaching PGR >= x (x in [0, 1]); None if the curve never does."""
    target = q_weak + x * (q_strong - q_weak)
    curve = _curve(points, strong)
    if curve[0][1] >= target:
        return curve[0][0]
    for (s1, q1), (s2, q2) in zip(curve, curve[1:]):
        if q2 >= target > q1:
            return s1 + (target - q1) / (q2 - q1) * (s2 - s1)
    return None


def pair_metrics(o: Outcomes, strong: str, weak: str, curve: list[Point]) -> dict:
    q_s, q_w = single(o, strong).quality, single(o, weak).quality
    return {"strong": strong, "weak": weak, "q_strong": q_s, "q_weak": q_w, "apgr": apgr(curve, strong, q_s, q_w),
            **{f"cpt_{x}": cpt(curve, strong, q_s, q_w, x / 100) for x in (20, 50, 80)}}


# --- the report ----------------------------------------------------------------------------------------


def frontier_report(o: Outcomes, policies: Iterable[Point] = ()) -> dict:
    """The ``routekit research frontier --json`` document: models, oracle, frontier (NDCH of the models and
    the extra policies; segments between its points are reachable by random mixes), AIQ of those points."""
    models = [single(o, m) for m in o.models]
    points = models + list(policies)
    best = oracle(o)
    return {
        "models": [{"model": p.policy, "quality": p.quality, "cost_per_request_usd": p.cost_per_request_usd}
                   for p in models],
        "oracle": {"quality": best.quality, "cost_per_request_usd": best.cost_per_request_usd},
        "frontier": [{"quality": p.quality, "cost_per_request_usd": p.cost_per_request_usd, "policy": p.policy}
                     for p in ndch(points)],
        "aiq": aiq(points),
        "prompts": o.n,
        "dropped_prompts": o.dropped_prompts,
        "policies": [p.to_dict() for p in points],
    }


# --- real data importers ------------------------------------------------------------------------------

GSM8K_MODELS = {  # model column -> price-snapshot key (data/prices)
    "gpt-4-1106-preview": "gpt-4-1106-preview",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
}


def import_routellm_gsm8k(src: str | os.PathLike, prices: Any = None) -> Any:
    """RouteLLM's GSM8K responses as a long outcome table, decontaminated as RouteLLM does.

    Rows whose prompt is an ``eval_prompt`` of ``contaminated_prompts.jsonl`` are dropped.  Score: the
    correctness RouteLLM recorded.  Tokens: the question as RouteLLM sent it ("Question: ...\\nAnswer:")
    and the response, counted with toolkit.tokens (approximate, cl100k, for Mixtral); RouteLLM's 8-shot
    prefix is not in the data and not counted, so costs are a lower bound.  Prices: the snapshot in
    data/prices (keys in :data:`GSM8K_MODELS`).  ``prompt``: the question's text (for trained routers)."""
    import polars as pl

    from ..costs import PriceBook, Usage
    from ..tokens import count_text

    src = Path(src)
    prices = prices or PriceBook.load()
    raw = pl.read_csv(src / "gsm8k_responses.csv").with_row_index("idx")
    contaminated = [json.loads(line)["eval_prompt"]
                    for line in (src / "contaminated_prompts.jsonl").read_text().splitlines() if line.strip()]
    clean = raw.filter(~pl.col("prompt").is_in(contaminated))
    rows = []
    for r in clean.iter_rows(named=True):
        for model, key in GSM8K_MODELS.items():
            rates = prices.lookup(key)
            if rates is None:
                raise OutcomeTableError(f"price snapshot {prices.version} has no {key!r}")
            question = count_text(key, f"Question: {r['prompt']}\nAnswer:")
            answer = count_text(key, r[f"{model}_response"] or "")
            usage = Usage(input_tokens=question.tokens, output_tokens=answer.tokens)
            rows.append({"prompt_id": f"gsm8k-test-{r['idx']:04d}", "intent": "math", "model": model,
                         "score": float(bool(r[model])), "cost_usd": rates.cost(usage)[0],
                         "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                         "tokens": usage.input_tokens + usage.output_tokens, "tokens_approx": answer.approx,
                         "price_key": key, "price_version": prices.version, "prompt": r["prompt"]})
    return pl.DataFrame(rows)


def import_routerarena(src: str | os.PathLike) -> Any:
    """RouterArena's per-model answer files (``*.jsonl`` beside ``cost.json``) as a long outcome table,
    with the tokens and cost that RouterArena recorded; intent = the dataset prefix of ``global_index``;
    ``prompt`` = the question as RouterArena sent it."""
    import polars as pl

    rows = []
    for f in sorted(Path(src).glob("*.jsonl")):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                ev, tok = r["evaluation_result"], r["token_usage"]
                rows.append({"prompt_id": r["global_index"], "intent": r["global_index"].rsplit("_", 1)[0],
                             "model": r["llm_selected"], "score": float(ev["score"]),
                             "cost_usd": float(ev["inference_cost"]), "input_tokens": tok["input_tokens"],
                             "output_tokens": tok["output_tokens"], "tokens": tok["total_tokens"],
                             "metric": ev.get("metric"), "prompt": r["question"]})
            except (ValueError, KeyError, TypeError) as e:
                raise OutcomeTableError(f"{f}:{n}: not a RouterArena result line ({type(e).__name__}: {e})") from None
    return pl.DataFrame(rows)


DATASETS = {"routellm-gsm8k": import_routellm_gsm8k, "routerarena": import_routerarena}
