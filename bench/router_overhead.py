"""What the Router adds to a bare litellm call: decision + token count + record write.

Both run in one process against the same simulator on 127.0.0.1 (zero added latency),
sequentially, after a warm-up.  Prints p50/p95 of each, the ratio of p50s, and the
start-up time of `routekit --help`.

    .venv/bin/python bench/router_overhead.py [--n 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _wait(url: str) -> None:
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/_sim/health", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("simulator did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()

    import litellm

    from toolkit.demo import free_port
    from toolkit.router import Router

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The simulator runs in its own process, like a real server: no GIL shared with the client.
    scenario = Path(tempfile.mkdtemp()) / "zero-latency.yaml"
    scenario.write_text("default: {latency_ms: 0}\n")
    server = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "sim", "serve", "--port", str(port),
                               "--scenario", str(scenario)], stdout=subprocess.DEVNULL)
    _wait(url)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ROUTEKIT_SIM_URL"] = url
        os.environ["ROUTEKIT_OVERRIDES"] = str(Path(tmp) / "overrides.json")
        router = Router(ROOT / "data" / "policy.demo.yaml", log=Path(tmp) / "log")
        messages = [{"role": "user", "content": "Classify this ticket: my invoice was charged twice."}]
        bare_kw = dict(model="openai/gpt-4o-mini", api_base=f"{url}/v1", api_key="x", messages=messages,
                       max_retries=0, timeout=10)

        def bare() -> None:
            litellm.completion(**bare_kw)

        from litellm._internal_context import is_internal_call

        def bare_quiet() -> None:
            # The same call with litellm's background success logging off, as routekit's transport runs it.
            token = is_internal_call.set(True)
            try:
                litellm.completion(**bare_kw)
            finally:
                is_internal_call.reset(token)

        def routed() -> None:
            router.complete("triage", messages, team="bench")

        sides = (("bare", bare), ("bare_quiet", bare_quiet), ("routed", routed))
        for _, fn in sides:
            for _ in range(30):
                fn()
        times: dict[str, list[float]] = {name: [] for name, _ in sides}
        # Alternate blocks so that machine noise hits both alike; the first call of each block is
        # dropped because litellm's background logging of the other side's last call still runs then.
        block = 25
        for _ in range(max(1, args.n // block)):
            for name, fn in sides:
                for i in range(block + 1):
                    t0 = time.perf_counter()
                    fn()
                    if i:
                        times[name].append((time.perf_counter() - t0) * 1000)
    server.terminate()

    for name, xs in times.items():
        print(f"{name:>10}: p50 {statistics.median(xs):6.2f} ms   p95 {pct(xs, 0.95):6.2f} ms   (n={len(xs)})")
    p50 = {name: statistics.median(xs) for name, xs in times.items()}
    print(f"routed / bare litellm p50 ratio: {p50['routed'] / p50['bare']:.3f}")
    ratio = p50["routed"] / p50["bare_quiet"]
    print(f"routed / bare litellm (same settings) p50 ratio: {ratio:.3f}  "
          f"(the toolkit's own decision + record add {100 * (ratio - 1):.1f}%; target < 10%)")

    help_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "toolkit.cli", "--help"], check=True, capture_output=True)
        help_times.append(time.perf_counter() - t0)
    print(f"routekit --help: median {statistics.median(help_times):.3f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
