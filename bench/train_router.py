"""Trained routers: fit + cross-validate time and peak memory per router on the GSM8K and RouterArena tables,
feature extraction throughput per feature kind, and each router's held-out figures.

Every router runs the whole `routekit research train` evaluation in this process (k-fold by prompt, the
bootstrap, the baselines; leave-one-domain-out where the table has intents), one after the other; peak memory
is tracemalloc's peak during that run (numpy and scipy allocations included).  Ratios are to the linear
router on the same table, measured in this run.

    .venv/bin/python bench/train_router.py [--cv 5] [--bootstrap 1000] [--routers linear,knn,mf,multi]
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLES = {"GSM8K": ROOT / "data/outcomes/routellm-gsm8k.csv", "RouterArena": ROOT / "data/outcomes/routerarena.csv"}


def features_throughput(texts: list[str]) -> None:
    from toolkit.research import features

    t0 = time.perf_counter()
    features.Tfidf().fit(texts).transform(texts)
    tfidf = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    features.Embed.model()
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    features.Embed().transform(texts)
    embed = len(texts) / (time.perf_counter() - t0)
    print(f"features on {len(texts)} prompts: tfidf (fit + transform) {tfidf:,.0f} prompts/s; embed (WordLlama) "
          f"{embed:,.0f} prompts/s after a {load:.2f} s model load; embed / tfidf = {embed / tfidf:.2f}")


def main() -> int:
    from toolkit import research
    from toolkit.research import evaluate, features

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--routers", default="linear,knn,mf,multi")
    ap.add_argument("--features", default="tfidf,embed")
    args = ap.parse_args()
    for name, path in TABLES.items():
        o = research.load_outcomes(path)
        texts = features.read_prompts(path, o.prompt_ids)
        print(f"\n== {name}: {o.n} prompts x {len(o.models)} models, {len(set(o.intents))} intents")
        features_throughput(texts)
        base = None
        print(f"  {'router':<14} {'fit+CV s':>9} {'x linear':>9} {'peak MiB':>9}   held-out figures")
        for kind in args.features.split(","):
            for router in args.routers.split(","):
                tracemalloc.start()
                t0 = time.perf_counter()
                r = evaluate.train(o, texts, evaluate.Setup(router=router, features=kind, cv=args.cv,
                                                            bootstrap=args.bootstrap), cache=False).report
                secs = time.perf_counter() - t0
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
                base = base or secs
                b = r["baselines"]
                if r["apgr"] is not None:
                    figs = (f"APGR {r['apgr']:.3f} [{r['apgr_ci'][0]:.3f}, {r['apgr_ci'][1]:.3f}] CPT(50%) "
                            f"{r['cpt50']:.1%} [{r['cpt50_ci'][0]:.1%}, {r['cpt50_ci'][1]:.1%}]; lookup "
                            f"{b['lookup']['apgr']:.3f}, random {b['random']['apgr']:.3f}")
                else:
                    figs = (f"AIQ {r['aiq']:.4f} [{r['aiq_ci'][0]:.4f}, {r['aiq_ci'][1]:.4f}]; zero router "
                            f"{b['zero_router']['aiq']:.4f}, lookup {b['lookup']['aiq']:.4f}")
                if r["lodo"]:
                    lo = r["lodo"]["router"]
                    figs += (f"; leave-one-domain-out ({r['lodo']['domains']}) "
                             + (f"APGR {lo['apgr']:.3f}" if lo["apgr"] is not None else f"AIQ {lo['aiq']:.4f}"))
                print(f"  {router + '/' + kind:<14} {secs:>9.1f} {secs / base:>9.2f} {peak:>9.1f}   {figs}",
                      flush=True)
        print(f"  best single {b['best_single']['model']} {b['best_single']['quality']:.4f}, oracle "
              f"{b['oracle']['quality']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
