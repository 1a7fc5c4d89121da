"""What shared state and the LiteLLM proxy cost: one run each, figures as medians and ratios.

1. The Router's own time per call (the routed call minus the time inside the transport, as
   bench/router_overhead.py measures it) with the embedded state and with Redis — for a request no budget covers
   (the kill switch and circuits come from the snapshot a background thread refreshes: no round trip) and for a
   budgeted one (the ledger's reserve and settle: two Lua round trips on Redis, two SQLite transactions
   embedded).  Sides interleaved call by call against one simulator (zero latency).
2. How long a disable takes to be obeyed by a Router in another process (``state.refresh_s`` 0.2 s).
3. The LiteLLM proxy's added p50 over a bare litellm call to the same simulated model, with and without the
   routekit callback (needs the proxy's virtualenv: ``make proxy-env``, or ROUTEKIT_PROXY_PYTHON).

    .venv/bin/python bench/state_backend.py [--n 1000] [--proxy-n 300]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from router_overhead import Timed  # noqa: E402  (the same stopwatch round the transport; bench/ is on the path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def wait_http(url: str, limit_s: float = 120) -> None:
    deadline = time.time() + limit_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{url} did not answer")
            time.sleep(0.2)


def start_redis(workdir: Path, fsync: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    workdir.mkdir()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--dir", str(workdir), "--save", "", "--appendonly", "yes",
                             "--appendfsync", fsync], stdout=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def router_overhead(sim_url: str, redis: dict[str, str], tmp: Path, n: int) -> None:
    from toolkit.router import Router
    from toolkit.transport import LiteLLMTransport

    demo = (ROOT / "data" / "policy.demo.yaml").read_text()
    (tmp / "embedded.yaml").write_text(demo)
    os.environ.update(ROUTEKIT_SIM_URL=sim_url, ROUTEKIT_STATE_DIR=str(tmp / "state"))
    transport = Timed(LiteLLMTransport())
    routers = {"embedded": Router(tmp / "embedded.yaml", log=tmp / "log-e", transport=transport)}
    for i, (name, url) in enumerate(redis.items()):
        os.environ[f"BENCH_REDIS_URL_{i}"] = url
        (tmp / f"redis{i}.yaml").write_text(demo + f"\nstate: {{backend: redis, url_env: BENCH_REDIS_URL_{i}}}\n")
        routers[name] = Router(tmp / f"redis{i}.yaml", log=tmp / f"log-r{i}", transport=transport)
    own: dict[tuple[str, str], list[float]] = {(s, t): [] for s in routers for t in ("bench", "growth")}
    msg = [{"role": "user", "content": "Classify this ticket: my invoice was charged twice."}]
    for _ in range(30):
        for r in routers.values():
            r.complete("triage", msg, team="bench")
    sides = list(routers)
    for i in range(n):
        for team in ("bench", "growth"):       # growth: a budget covers it (reserve + settle per call)
            for side in (sides if i % 2 else sides[::-1]):
                before = transport.spent
                t0 = time.perf_counter()
                routers[side].complete("triage", msg, team=team)
                took = time.perf_counter() - t0
                own[(side, team)].append((took - (transport.spent - before)) * 1e6)
    print(f"1. the Router's own time per call (µs; the routed call minus the time inside the transport; n={n}):")
    for team, what in (("bench", "no budget covers the call (kill switch, circuits: the snapshot)"),
                       ("growth", "a budget covers the call (the ledger: reserve + settle)")):
        print(f"  {what}:")
        e = statistics.median(own[("embedded", team)])
        for side in sides:
            xs = own[(side, team)]
            print(f"    {side:<30} p50 {statistics.median(xs):7.0f}  p95 {pct(xs, .95):7.0f}   "
                  f"vs embedded p50 {statistics.median(xs) / e:5.2f}x")
    print("  (target: p50 < 150 µs for a call no budget covers; bench/router_overhead.py prints the embedded side "
          "against bare litellm; appendfsync always waits for the disk on every ledger write)")
    for r in routers.values():
        r.state.close()


def disable_seen(tmp: Path, rounds: int = 20) -> None:
    """A Router in another process reports when it first sees each disable (it polls its snapshot)."""
    policy = tmp / "redis0.yaml"
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(policy)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert watcher.stdout.readline().strip() == "ready"
    from toolkit.policy import load_policy
    from toolkit.state import open_state

    state = open_state(load_policy(policy))
    seen = []
    jitter = random.Random(17)
    for i in range(rounds):
        time.sleep(jitter.uniform(0, 0.25))   # not in step with the watcher's refresh
        t0 = time.time()
        state.disable("fast-openai", f"bench {i}", by="bench")
        seen.append(float(watcher.stdout.readline()) - t0)
        state.enable("fast-openai", by="bench")
        watcher.stdout.readline()
    watcher.terminate()
    watcher.wait(10)
    state.close()
    print(f"2. a disable obeyed by a Router in another process after: p50 {statistics.median(seen) * 1000:.0f} ms, "
          f"max {max(seen) * 1000:.0f} ms ({rounds} disables; refresh_s 0.2; target < 1 s)")


WATCHER = """
import sys, time
from toolkit.router import Router
r = Router(sys.argv[1], log=None)
r.overrides.refresh()
print("ready", flush=True)
want = True
while True:
    r.overrides.refresh()
    if (r.overrides.get("fast-openai") is not None) == want:
        print(time.time(), flush=True)
        want = not want
    time.sleep(0.002)
"""


def proxy_added(sim_url: str, tmp: Path, n: int) -> None:
    python = Path(os.environ.get("ROUTEKIT_PROXY_PYTHON") or ROOT / ".venv-proxy" / "bin" / "python")
    if not python.exists():
        print("3. the proxy: skipped (no proxy environment: `make proxy-env`, or set ROUTEKIT_PROXY_PYTHON)")
        return
    from toolkit.cli import main
    from toolkit.transport import litellm_module

    key = "sk-bench-master-key-000000000000"
    procs, urls = [], {}
    try:
        for name in ("without the callback", "with the routekit callback"):
            cfg = tmp / f"proxy-{len(urls)}.yaml"
            with open(os.devnull, "w") as quiet:
                sys.stdout, old = quiet, sys.stdout
                try:
                    main(["export", "litellm-proxy", "--policy", str(tmp / "embedded.yaml"), "-o", str(cfg),
                          "--log", str(tmp / "proxy-log")])
                finally:
                    sys.stdout = old
            if name.startswith("without"):
                cfg.write_text(cfg.read_text().replace("  - toolkit.proxy.callback.handler\n", "")
                               .replace("  callbacks:\n", "  callbacks: []\n"))
            port = free_port()
            procs.append(subprocess.Popen([str(python), "-m", "litellm.proxy.proxy_cli", "--config", str(cfg),
                                           "--host", "127.0.0.1", "--port", str(port)], cwd=tmp,
                                          env={**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_MASTER_KEY": key},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_http(url + "/health/liveliness")
        litellm = litellm_module()
        from litellm._internal_context import is_internal_call

        msg = [{"role": "user", "content": "Classify this ticket: my invoice was charged twice."}]
        body = json.dumps({"model": "triage", "messages": msg}).encode()

        def bare() -> None:
            token = is_internal_call.set(True)
            try:
                litellm.completion(model="openai/gpt-4o-mini", api_base=f"{sim_url}/v1", api_key="x", messages=msg,
                                   max_retries=0, timeout=10)
            finally:
                is_internal_call.reset(token)

        def via(url: str):
            def call() -> None:
                req = urllib.request.Request(url + "/v1/chat/completions", data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {key}"})
                urllib.request.urlopen(req, timeout=30).read()
            return call

        sides = {"bare litellm": bare, **{name: via(url) for name, url in urls.items()}}
        times: dict[str, list[float]] = {s: [] for s in sides}
        for _ in range(20):
            for fn in sides.values():
                fn()
        for i in range(n):
            order = list(sides.items())
            for name, fn in (order if i % 2 else order[::-1]):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1000)
        base = statistics.median(times["bare litellm"])
        print(f"3. the LiteLLM proxy against a bare litellm call (ms, n={n} each, interleaved):")
        for name, xs in times.items():
            added = "" if name == "bare litellm" else f"   added p50 {statistics.median(xs) - base:6.2f} ms"
            print(f"  {name:<28} p50 {statistics.median(xs):6.2f}  p95 {pct(xs, .95):6.2f}{added}")
        w, wo = (statistics.median(times[k]) for k in ("with the routekit callback", "without the callback"))
        print(f"  the callback's share: {w - wo:+.2f} ms p50 ({w / wo:.3f}x)")
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="routed calls per side and case (default 1000)")
    ap.add_argument("--proxy-n", type=int, default=300, help="calls per proxy side (default 300)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        sim_url = f"http://127.0.0.1:{port}"
        (tmp / "zero.yaml").write_text("default: {latency_ms: 0}\n")
        sim = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "sim", "serve", "--port", str(port),
                                "--behaviours", str(tmp / "zero.yaml")], stdout=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
        servers = {f"redis (appendfsync {f})": start_redis(tmp / f"redis-{f}", f) for f in ("always", "everysec")}
        try:
            wait_http(sim_url + "/_sim/health")
            router_overhead(sim_url, {k: url for k, (_, url) in servers.items()}, tmp, args.n)
            disable_seen(tmp)
            proxy_added(sim_url, tmp, args.proxy_n)
        finally:
            sim.terminate()
            sim.wait(10)
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
