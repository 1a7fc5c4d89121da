"""A trained router's report (:func:`.evaluate.train`) as text and charts: learned router and baselines side by side."""
from __future__ import annotations

from typing import Any


def _ci(ci: Any, fmt: str) -> str:
    if not ci:
        return ""
    return "[" + ", ".join("never" if v is None else fmt.format(v) for v in ci) + "]"


def _row(label: str, m: dict) -> str:
    def cell(key: str, fmt: str) -> str:
        v = m.get(key)
        return "-" if v is None else f"{fmt.format(v)} {_ci(m.get(key + '_ci'), fmt)}"

    return (f"  {label:<24} {cell('apgr', '{:.3f}'):<22} {cell('cpt50', '{:.1%}'):<24} {cell('cpt80', '{:.1%}'):<24} "
            f"{cell('aiq', '{:.4f}')}")


def train_text(r: dict, source: str) -> str:
    """The terminal report of ``routekit research train``."""
    b = r["baselines"]
    lines = [f"{source}: {r['n']} prompts, {r['router']} router on {r['features']} features, {r['cv']}-fold "
             f"cross-validation by prompt (seed {r['seed']}); 95% bootstrap intervals"]
    if r["strong"]:
        lines.append(f"strong {r['strong']}, weak {r['weak']}")
    lines += ["", f"  {'':<24} {'APGR':<22} {'CPT(50%)':<24} {'CPT(80%)':<24} AIQ",
              _row(f"{r['router']} (learned)", r),
              _row(f"lookup ({b['lookup']['intents']} intents)", b["lookup"]),
              _row("random", b["random"]),
              _row("zero router (models)", b["zero_router"])]
    best, orc = b["best_single"], b["oracle"]
    lines.append(f"  {'best single':<24} {best['model']}: quality {best['quality']:.4f}, "
                 f"${best['cost_per_request_usd']:.6g} per request")
    lines.append(f"  {'oracle':<24} quality {orc['quality']:.4f}, ${orc['cost_per_request_usd']:.6g} per request"
                 + (f", APGR {orc['apgr']:.3f}" if orc.get("apgr") is not None else ""))
    d = r["vs_lookup"]
    for k in ("apgr", "aiq"):
        if d.get(f"{k}_diff") is not None:
            lines.append(f"  {'router - lookup':<24} {k.upper()} {d[k + '_diff']:+.4f} {_ci(d[k + '_diff_ci'], '{:+.4f}')}")
    if r.get("lodo"):
        lo = r["lodo"]
        lines += ["", f"leave-one-domain-out ({lo['domains']} domains, each predicted by a router that never saw it):",
                  _row(f"{r['router']} (learned)", lo["router"]), _row("lookup", lo["lookup"])]
    cal = r.get("calibration")
    if cal:
        t = cal["target"]
        goal = (f"strong share {t['strong_share']:g}" if t["strong_share"] is not None
                else f"cost per request <= ${t['max_cost_per_request']:.6g}")
        lines += ["", f"calibrated on the training folds to {goal}; reached on the held-out folds:"]
        for who, h in cal["held_out"].items():
            lines.append(f"  {who:<8} strong share {h['strong_share']:.3f}, cost ${h['cost_per_request_usd']:.6g} "
                         f"{_ci(h['cost_per_request_usd_ci'], '${:.6g}')}, quality {h['quality']:.4f} "
                         f"{_ci(h['quality_ci'], '{:.4f}')}, error {h['error']:+.4g}")
        lines.append(f"  router - lookup quality {cal['quality_diff']:+.4f} {_ci(cal['quality_diff_ci'], '{:+.4f}')}")
    pol = r.get("policy")
    if pol:
        h = pol["held_out"]
        lines += ["", f"policy ({'router: block' if pol['kind'] == 'router' else 'route table'}) -> {pol['policy']}"
                      + (f" (model file {pol['model_file']})" if pol.get("model_file") else ""),
                  f"  on its {h['prompts']} held-out prompts ({pol['held_out_prompts']}): quality {h['quality']:.4f} "
                  f"{_ci(h['quality_ci'], '{:.4f}')}, cost ${h['cost_per_request_usd']:.6g}, strong share "
                  f"{h['strong_share']:.3f}"]
    return "\n".join(lines)


def pgr_chart(report: dict, title: str = "") -> Any:
    """PGR against the share of strong calls, learned router beside the lookup, random and oracle curves."""
    import altair as alt
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
    from .replay import Point, frontier_chart, ndch

    pts = report["points"]
    policies = [{**p, "kind": "model" if key == "models" else p["kind"]}
                for key in ("models", "router", "lookup", "random") for p in pts.get(key, [])]
    zero = ndch([Point(m["policy"], m["quality"], m["cost_per_request_usd"]) for m in pts["models"]])
    doc = {"policies": policies, "oracle": {k: pts["oracle"][0][k] for k in ("quality", "cost_per_request_usd")},
           "frontier": [{"policy": p.policy, "quality": p.quality, "cost_per_request_usd": p.cost_per_request_usd}
                        for p in zero], "aiq": report["aiq"]}
    return frontier_chart(doc, title=f"{title} {report['router']} router, held out; dashed: zero router".strip())


def summary_frame(reports: dict[str, dict]) -> Any:
    """One row per trained router: its held-out figures with intervals beside the baselines'."""
    import polars as pl

    def fmt(v: Any, ci: Any = None, f: str = "{:.3f}") -> str | None:
        if v is None:
            return None
        return f.format(v) + (f" {_ci(ci, f)}" if ci else "")

    rows = []
    for label, r in reports.items():
        b = r["baselines"]
        rows.append({"table / router": label, "APGR": fmt(r["apgr"], r["apgr_ci"]),
                     "CPT(50%)": fmt(r["cpt50"], r["cpt50_ci"], "{:.1%}"), "AIQ": fmt(r["aiq"], r["aiq_ci"], "{:.4f}"),
                     "lookup APGR": fmt(b["lookup"]["apgr"]), "random APGR": fmt(b["random"].get("apgr")),
                     "zero-router AIQ": fmt(b["zero_router"]["aiq"], f="{:.4f}"),
                     "best single": f"{b['best_single']['model']} {b['best_single']['quality']:.3f}",
                     "oracle": f"{b['oracle']['quality']:.3f}"})
    return pl.DataFrame(rows)
