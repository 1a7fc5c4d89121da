"""Trained routers: fit + cross-validate time and peak memory per router on the GSM8K and RouterArena tables,
feature extraction throughput per feature kind, and each router's held-out figures.

Every router runs the whole `routekit research train` evaluation (k-fold by prompt, the bootstrap, the
baselines; leave-one-domain-out where the table has intents) in a fresh process of its own, one after the
other: the time is that evaluation's; memory is the process's peak RSS during it (Linux VmHWM, reset just before)
and how much that peak added to the RSS the process had with the table and prompts loaded.  Ratios are to the linear router on the same table,
measured in this run.  RouterArena's 78 intents make 78 more fits and bootstraps per router.

    .venv/bin/python bench/train_router.py [--cv 5] [--bootstrap 1000] [--routers linear,knn,mf,multi]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLES = {"GSM8K": ROOT / "data/outcomes/routellm-gsm8k.csv", "RouterArena": ROOT / "data/outcomes/routerarena.csv"}


def features_throughput(texts: list[str]) -> None:
    from toolkit.research import features

    t0 = time.perf_counter()
    features.Tfidf().fit(texts).transform(texts)
    tfidf = len(texts) / (time.perf_counter() - t0)
    loaded = features.Embed._model is not None
    t0 = time.perf_counter()
    features.Embed.model()
    load = "" if loaded else f" after a {time.perf_counter() - t0:.2f} s model load"
    t0 = time.perf_counter()
    features.Embed().transform(texts)
    embed = len(texts) / (time.perf_counter() - t0)
    print(f"features on {len(texts)} prompts: tfidf (fit + transform) {tfidf:,.0f} prompts/s; embed (WordLlama) "
          f"{embed:,.0f} prompts/s{load}; embed / tfidf = {embed / tfidf:.2f}")


def one(table: str, router: str, kind: str, cv: int, bootstrap: int) -> None:
    """Child process: one evaluation; prints its report, time and peak RSS as JSON."""
    from toolkit import research
    from toolkit.research import evaluate, features

    path = TABLES[table]
    o = research.load_outcomes(path)
    texts = features.read_prompts(path, o.prompt_ids)
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")   # reset the peak (VmHWM) to the current RSS
    t0 = time.perf_counter()
    r = evaluate.train(o, texts, evaluate.Setup(router=router, features=kind, cv=cv, bootstrap=bootstrap),
                       cache=False).report
    secs = time.perf_counter() - t0
    r.pop("points")
    print(json.dumps({"secs": secs, "rss_mib": _status_kib("VmHWM") / 1024,
                      "added_mib": (_status_kib("VmHWM") - before) / 1024, "report": r}))


def _status_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def figures(r: dict) -> str:
    b = r["baselines"]
    if r["apgr"] is not None:
        out = (f"APGR {r['apgr']:.3f} [{r['apgr_ci'][0]:.3f}, {r['apgr_ci'][1]:.3f}] CPT(50%) {r['cpt50']:.1%} "
               f"[{r['cpt50_ci'][0]:.1%}, {r['cpt50_ci'][1]:.1%}]; lookup {b['lookup']['apgr']:.3f}, "
               f"random {b['random']['apgr']:.3f}")
    else:
        out = (f"AIQ {r['aiq']:.4f} [{r['aiq_ci'][0]:.4f}, {r['aiq_ci'][1]:.4f}]; zero router "
               f"{b['zero_router']['aiq']:.4f}, lookup {b['lookup']['aiq']:.4f}")
    if r["lodo"]:
        lo = r["lodo"]["router"]
        out += (f"; leave-one-domain-out ({r['lodo']['domains']}) "
                + (f"APGR {lo['apgr']:.3f}" if lo["apgr"] is not None else f"AIQ {lo['aiq']:.4f}"))
    return out


def main() -> int:
    from toolkit import research
    from toolkit.research import features

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--routers", default="linear,knn,mf,multi")
    ap.add_argument("--features", default="tfidf,embed")
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--one", nargs=3, metavar=("TABLE", "ROUTER", "FEATURES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(*args.one, args.cv, args.bootstrap)
        return 0
    for name in args.tables.split(","):
        path = TABLES[name]
        o = research.load_outcomes(path)
        texts = features.read_prompts(path, o.prompt_ids)
        print(f"\n== {name}: {o.n} prompts x {len(o.models)} models, {len(set(o.intents))} intents")
        features_throughput(texts)
        base = None
        print(f"  {'router':<14} {'fit+CV s':>9} {'x linear':>9} {'peak MiB':>9} {'added':>7}   "
              f"held-out figures (5-fold, 95% CI)")
        for kind in args.features.split(","):
            for router in args.routers.split(","):
                child = subprocess.run([sys.executable, __file__, "--one", name, router, kind, "--cv", str(args.cv),
                                        "--bootstrap", str(args.bootstrap)], capture_output=True, text=True)
                if child.returncode:
                    print(f"  {router + '/' + kind:<14} failed: {child.stderr.strip().splitlines()[-1:]}")
                    continue
                res = json.loads(child.stdout.strip().splitlines()[-1])
                base = base or res["secs"]
                print(f"  {router + '/' + kind:<14} {res['secs']:>9.1f} {res['secs'] / base:>9.2f} "
                      f"{res['rss_mib']:>9.0f} {res['added_mib']:>7.0f}   {figures(res['report'])}", flush=True)
        b = res["report"]["baselines"]
        print(f"  best single {b['best_single']['model']} {b['best_single']['quality']:.4f}, oracle "
              f"{b['oracle']['quality']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
