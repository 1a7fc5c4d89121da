"""Policy replay, frontier, AIQ and RouteLLM metrics: checked against plain, independent computations."""
from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import polars as pl
import pytest

from toolkit import research
from toolkit.research import OutcomeTableError, Point

from .conftest import DATA, ROOT

GSM = DATA / "outcomes" / "routellm-gsm8k"
ARENA = DATA / "outcomes" / "routerarena"
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


# --- plain reference computations (no polars, no numpy, no toolkit.research) -----------------------------

def plain_quantile(xs: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), written out."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def plain_threshold_curve(w: list[float], strong: list[float], weak: list[float], bins: int = 10):
    """RouteLLM's sweep: (share of strong calls, accuracy) at each quantile threshold."""
    out = []
    thresholds = [plain_quantile(w, k / bins) for k in range(bins + 1)]
    for i, t in enumerate(thresholds):
        pick = [(x > t) if i == len(thresholds) - 1 else (x >= t) for x in w]
        out.append((sum(pick) / len(w), sum(s if p else k for p, s, k in zip(pick, strong, weak)) / len(w)))
    return sorted(out)


def plain_apgr(curve, q_strong: float, q_weak: float) -> float:
    auc = sum((s2 - s1) * (a1 + a2) / 2 for (s1, a1), (s2, a2) in zip(curve, curve[1:]))
    width = curve[-1][0] - curve[0][0]
    return (auc - q_weak * width) / ((q_strong - q_weak) * width)


def plain_oracle(rows: dict[str, dict[str, tuple[float, float]]]) -> tuple[float, float]:
    """rows: prompt -> model -> (score, cost). The cheapest model among those with the best score."""
    q = c = 0.0
    for by_model in rows.values():
        best = max(s for s, _ in by_model.values())
        q += best
        c += min(cost for s, cost in by_model.values() if s == best)
    return q / len(rows), c / len(rows)


# --- RouteLLM GSM8K ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gsm8k_plain():
    """The raw CSV read with the csv module, decontaminated, tokens counted with tiktoken itself and
    priced from the snapshot JSON read directly."""
    import litellm.litellm_core_utils.default_encoding  # noqa: F401 — litellm's bundled encodings, no download
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base")
    snapshot = json.loads(next((DATA / "prices").glob("*.json")).read_text())
    price = {m: (snapshot[k]["input_cost_per_token"], snapshot[k]["output_cost_per_token"])
             for m, k in research.GSM8K_MODELS.items()}
    contaminated = {json.loads(line)["eval_prompt"] for line in (GSM / "contaminated_prompts.jsonl").open()}
    rows = {}
    with (GSM / "gsm8k_responses.csv").open(newline="") as f:
        for idx, r in enumerate(csv.DictReader(f)):
            if r["prompt"] in contaminated:
                continue
            q_tokens = len(enc.encode(f"Question: {r['prompt']}\nAnswer:"))
            rows[f"gsm8k-test-{idx:04d}"] = {
                m: (1.0 if r[m] == "True" else 0.0,
                    q_tokens * price[m][0] + len(enc.encode(r[f"{m}_response"])) * price[m][1],
                    len(enc.encode(r[f"{m}_response"])), len(r[f"{m}_response"]))
                for m in research.GSM8K_MODELS}
    return rows


@pytest.fixture(scope="module")
def gsm8k():
    return research.load_outcomes(DATA / "outcomes" / "routellm-gsm8k.csv")


def test_gsm8k_shipped_table_is_what_the_importer_builds(gsm8k_plain):
    built = research.import_routellm_gsm8k(GSM)
    shipped = pl.read_csv(DATA / "outcomes" / "routellm-gsm8k.csv")
    key = ["prompt_id", "model"]
    cols = ["score", "input_tokens", "output_tokens", "cost_usd"]
    assert built.sort(key).select(key + cols).equals(shipped.sort(key).select(key + cols))
    assert built["prompt_id"].n_unique() == len(gsm8k_plain) == 1319 - 12
    # toolkit.tokens (litellm) encodes in 1024-character chunks: the pieces a chunk boundary cuts are
    # counted apart, so a count may exceed one plain encode by a token or two per boundary, never fall short
    extra = []
    for r in built.iter_rows(named=True):
        _, _, plain, chars = gsm8k_plain[r["prompt_id"]][r["model"]]
        assert 0 <= r["output_tokens"] - plain <= 2 * ((chars - 1) // 1024)
        extra.append(r["output_tokens"] - plain)
    assert sum(extra) / sum(v[2] for r in gsm8k_plain.values() for v in r.values()) < 1e-3


def test_gsm8k_accuracies_oracle_and_costs_match_plain_calculation(gsm8k, gsm8k_plain):
    report = research.frontier_report(gsm8k)
    for m in report["models"]:
        plain_q = sum(r[m["model"]][0] for r in gsm8k_plain.values()) / len(gsm8k_plain)
        plain_c = sum(r[m["model"]][1] for r in gsm8k_plain.values()) / len(gsm8k_plain)
        assert m["quality"] == pytest.approx(plain_q, abs=1e-12)
        assert m["cost_per_request_usd"] == pytest.approx(plain_c, rel=2e-4)   # chunking: see above
    q, c = plain_oracle({p: {m: v[:2] for m, v in r.items()} for p, r in gsm8k_plain.items()})
    assert report["oracle"]["quality"] == pytest.approx(q, abs=1e-12)
    assert report["oracle"]["cost_per_request_usd"] == pytest.approx(c, rel=2e-4)
    # RouteLLM's published pair: GPT-4 well above Mixtral on GSM8K
    quality = {m["model"]: m["quality"] for m in report["models"]}
    assert quality[STRONG] > quality[WEAK] and q > quality[STRONG]


def test_gsm8k_random_router_apgr_matches_plain_and_is_half(gsm8k, gsm8k_plain):
    rng = random.Random(7)
    w = [rng.random() for _ in gsm8k.prompt_ids]
    curve = research.threshold_curve(gsm8k, w, STRONG, WEAK)
    strong = [gsm8k_plain[p][STRONG][0] for p in gsm8k.prompt_ids]
    weak = [gsm8k_plain[p][WEAK][0] for p in gsm8k.prompt_ids]
    q_s, q_w = sum(strong) / len(strong), sum(weak) / len(weak)
    plain_curve = plain_threshold_curve(w, strong, weak)
    got = sorted((p.share.get(STRONG, 0.0), p.quality) for p in curve)
    assert len(got) == len(plain_curve) == 11
    for (s1, q1), (s2, q2) in zip(got, plain_curve):
        assert (s1, q1) == pytest.approx((s2, q2), abs=1e-12)
    metrics = research.pair_metrics(gsm8k, STRONG, WEAK, curve)
    assert metrics["apgr"] == pytest.approx(plain_apgr(plain_curve, q_s, q_w), abs=1e-12)
    assert abs(metrics["apgr"] - 0.5) < 0.05
    seeded = research.pair_metrics(gsm8k, STRONG, WEAK, research.random_router_curve(gsm8k, STRONG, WEAK, seed=0))
    assert abs(seeded["apgr"] - 0.5) < 0.05 and abs(seeded["cpt_50"] - 0.5) < 0.1


# --- RouterArena -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arena_plain():
    rows: dict[str, dict] = {}
    for f in ARENA.glob("*.jsonl"):
        for line in f.open():
            r = json.loads(line)
            rows.setdefault(r["global_index"], {})[r["llm_selected"]] = (
                float(r["evaluation_result"]["score"]), float(r["evaluation_result"]["inference_cost"]))
    return rows


def test_routerarena_matches_plain_calculation_with_recorded_costs(arena_plain):
    table = research.import_routerarena(ARENA)
    shipped = pl.read_csv(DATA / "outcomes" / "routerarena.csv")
    assert table.sort("prompt_id", "model").select("prompt_id", "model", "score", "cost_usd").equals(
        shipped.sort("prompt_id", "model").select("prompt_id", "model", "score", "cost_usd"))
    o = research.load_outcomes(DATA / "outcomes" / "routerarena.csv")
    report = research.frontier_report(o)
    assert o.n == len(arena_plain) == 809
    for m in report["models"]:
        vals = [r[m["model"]] for r in arena_plain.values()]
        assert m["quality"] == pytest.approx(sum(s for s, _ in vals) / len(vals), abs=1e-12)
        assert m["cost_per_request_usd"] == pytest.approx(sum(c for _, c in vals) / len(vals), rel=1e-12)
    q, c = plain_oracle(arena_plain)
    assert report["oracle"] == pytest.approx({"quality": q, "cost_per_request_usd": c}, rel=1e-12)
    # gemini-2.0-flash is both better and cheaper here: the frontier is that one point, AIQ its quality
    assert [p["policy"] for p in report["frontier"]] == ["gemini-2.0-flash-001"]
    assert report["aiq"] == pytest.approx(report["frontier"][0]["quality"])
    strong, weak = "gemini-2.0-flash-001", "claude-3-haiku-20240307"
    rng = random.Random(11)
    w = [rng.random() for _ in o.prompt_ids]
    s = [arena_plain[p][strong][0] for p in o.prompt_ids]
    k = [arena_plain[p][weak][0] for p in o.prompt_ids]
    metrics = research.pair_metrics(o, strong, weak, research.threshold_curve(o, w, strong, weak))
    assert metrics["apgr"] == pytest.approx(plain_apgr(plain_threshold_curve(w, s, k), sum(s) / len(s),
                                                       sum(k) / len(k)), abs=1e-12)
    assert abs(metrics["apgr"] - 0.5) < 0.05


# --- the formulas on hand-computed cases ---------------------------------------------------------------

def P(name: str, cost: float, quality: float) -> Point:
    return Point(name, quality, cost)


def test_ndch_and_aiq_hand_computed():
    pts = [P("A", 1, .5), P("B", 2, .6), P("C", 3, .9), P("D", 4, .85), P("E", 2.5, .55), P("A2", 1, .4)]
    assert [p.policy for p in research.ndch(pts)] == ["A", "C"]      # B, E under the hull; D past the top
    # R~: .5 -> .9 linearly over [1, 3], flat .9 over [3, 4]: (2 * .7 + .9) / 3
    assert research.aiq(pts) == pytest.approx((2 * 0.7 + 0.9) / 3)
    assert research.aiq(pts, c_min=0) == pytest.approx((2 * 0.7 + 0.9) / 4)   # R~ = 0 below the cheapest point
    assert research.hull_quality(research.ndch(pts), 2.0) == pytest.approx(0.7)
    assert research.aiq([P("only", 1, .3)]) == pytest.approx(.3)
    # a point above the chord becomes a vertex
    assert [p.policy for p in research.ndch([P("A", 0, 0), P("B", 1, .8), P("C", 2, 1)])] == ["A", "B", "C"]


def test_pgr_apgr_cpt_hand_computed():
    curve = [Point("w", .6, 0, {"s": 0.0}), Point("m", .8, 0, {"s": .5}), Point("s", .9, 0, {"s": 1.0})]
    assert research.pgr(.75, .9, .6) == pytest.approx(.5)
    # AUC = .5 * (.6 + .8) / 2 + .5 * (.8 + .9) / 2 = .775 ; APGR = (.775 - .6) / .3
    assert research.apgr(curve, "s", .9, .6) == pytest.approx(.175 / .3)
    assert research.cpt(curve, "s", .9, .6, .5) == pytest.approx(.375)     # .75 reached at .5 * .15 / .2
    assert research.cpt(curve, "s", .9, .6, 1.0) == pytest.approx(1.0)
    assert research.cpt(curve, "s", .9, .6, 0.0) == pytest.approx(0.0)
    assert research.cpt(curve, "s", .95, .6, 1.0) is None


@pytest.fixture
def tiny(tmp_path):
    rows = [  # prompt, intent, model, score, cost, checked
        ("p1", "a", "cheap", 1.0, 1.0, 1), ("p1", "a", "dear", 1.0, 10.0, 1),
        ("p2", "a", "cheap", 0.0, 1.0, 1), ("p2", "a", "dear", 1.0, 10.0, 1),
        ("p3", "b", "cheap", 0.0, 2.0, 0), ("p3", "b", "dear", 0.0, 12.0, 0),
        ("p4", "b", "cheap", 1.0, 1.0, 1),   # answered by one model only: left out
    ]
    path = tmp_path / "tiny.csv"
    pl.DataFrame(rows, schema=["prompt_id", "intent", "model", "score", "cost_usd", "checked"],
                 orient="row").write_csv(path)
    return research.load_outcomes(path)


def test_policies_on_a_tiny_table(tiny):
    assert tiny.n == 3 and tiny.dropped_prompts == 1
    assert research.single(tiny, "cheap").quality == pytest.approx(1 / 3)
    assert research.single(tiny, "dear").cost_per_request_usd == pytest.approx(32 / 3)
    o = research.oracle(tiny)      # p1 cheap (tie -> cheaper), p2 dear, p3 both 0 -> cheap
    assert (o.quality, o.cost_per_request_usd) == pytest.approx((2 / 3, (1 + 10 + 2) / 3))
    c = research.cascade(tiny, threshold=1.0)   # cheap first; escalate p2 and p3
    assert (c.quality, c.cost_per_request_usd) == pytest.approx((2 / 3, (1 + 11 + 14) / 3))
    assert c.share == pytest.approx({"cheap": 1 / 3, "dear": 2 / 3})
    v = research.cascade(tiny, verifier="checked")   # the verifier trusts p1, p2 (wrongly), not p3
    assert (v.quality, v.cost_per_request_usd) == pytest.approx((1 / 3, (1 + 1 + 14) / 3))
    always_wrong = research.cascade(tiny, threshold=1.0, error_rate=1.0)   # accepts bad, rejects good
    assert always_wrong.quality == pytest.approx(1 / 3)   # p1 escalated (dear right), p2 kept (wrong), p3 kept
    s = research.static_routes(tiny, {"a": "cheap", "b": "dear"}, default="cheap")
    assert (s.quality, s.cost_per_request_usd) == pytest.approx((1 / 3, (1 + 1 + 12) / 3))
    m = research.random_mix(tiny, {"cheap": 1, "dear": 3})
    assert m.quality == pytest.approx(.25 * (1 / 3) + .75 * (2 / 3))
    drawn = research.random_mix(tiny, {"cheap": 1, "dear": 1}, seed=3)
    assert drawn == research.random_mix(tiny, {"cheap": 1, "dear": 1}, seed=3)


def test_bad_outcome_tables_name_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt_id,model,score,cost_usd\np1,a,1,0.1\np1,b,x,0.2\np2,a,1,\np1,a,0,0.3\n")
    with pytest.raises(OutcomeTableError) as e:
        research.load_outcomes(bad)
    msg = str(e.value)
    assert f"{bad}: score: missing or not a valid number at line 3" in msg
    assert f"{bad}: cost_usd: missing or not a valid number at line 4" in msg
    assert "('p1', 'a') appears 2 times" in msg and "line 2" in msg
    missing = tmp_path / "m.jsonl"
    missing.write_text('{"prompt_id": "p", "model": "a", "score": 1}\n')
    with pytest.raises(OutcomeTableError, match=r"m.jsonl: missing column\(s\) \['cost_usd'\]"):
        research.load_outcomes(missing)
    with pytest.raises(OutcomeTableError, match="unknown table format"):
        research.load_outcomes(tmp_path / "x.xlsx")


def test_cli_frontier_json_matches_library(gsm8k):
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "research", "frontier",
                        str(DATA / "outcomes" / "routellm-gsm8k.csv"), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"models", "oracle", "frontier", "aiq"} <= set(doc)
    assert set(doc["models"][0]) == {"model", "quality", "cost_per_request_usd"}
    assert set(doc["oracle"]) == {"quality", "cost_per_request_usd"}
    assert set(doc["frontier"][0]) == {"quality", "cost_per_request_usd", "policy"}
    lib = research.frontier_report(gsm8k)
    assert doc["aiq"] == pytest.approx(lib["aiq"]) and doc["oracle"] == pytest.approx(lib["oracle"])
    # two models, Mixtral cheaper and worse: the frontier is Mixtral -> GPT-4, AIQ the mean of the two
    assert [p["policy"] for p in doc["frontier"]] == [WEAK, STRONG]
    assert doc["aiq"] == pytest.approx(sum(m["quality"] for m in doc["models"]) / 2)
