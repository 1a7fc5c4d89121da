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
