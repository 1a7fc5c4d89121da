"""What the Router adds to a bare litellm call: the decision, token counting, pricing, the record write.

Both sides run in one process against the same simulator (its own process, zero added latency) and call the
same model with the same settings — litellm's background logging and cost calculation off, as routekit's
transport runs them, and no SDK retries.  The sides are *interleaved* call by call (bare, routed, bare, routed,
…) after a warm-up, so machine noise hits both alike, and enough calls are made for a stable median.

Two cases: a plain chat request, and an agent's call offering a tool (the model answers with a tool call, which
routekit checks against the tool's schema; the bare side passes the same tools, skipping litellm's MCP gateway as
routekit does).

Printed: p50/p95 of each side, the p50 ratio (target < 1.05) and routekit's own time per call: the routed call's
time minus the time spent inside the transport (p50, µs; target < 150 µs).

    .venv/bin/python bench/router_overhead.py [--n 2000]
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


class Timed:
    """The transport with a stopwatch: how long each call spent inside it."""

    def __init__(self, inner):
        self.inner, self.spent = inner, 0.0

    def complete(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return self.inner.complete(*a, **kw)
        finally:
            self.spent += time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="calls per side (default 2000)")
    args = ap.parse_args()

    import socket

    from toolkit.router import Router
    from toolkit.transport import LiteLLMTransport, litellm_module

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    scenario = Path(tempfile.mkdtemp()) / "zero-latency.yaml"
    scenario.write_text("default: {latency_ms: 0}\n")
    server = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "sim", "serve", "--port", str(port),
                               "--scenario", str(scenario)], stdout=subprocess.DEVNULL)
    try:
        _wait(url)
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(ROUTEKIT_SIM_URL=url, ROUTEKIT_OVERRIDES=str(Path(tmp) / "overrides.json"),
                              ROUTEKIT_STATE_DIR=tmp)
            timed = Timed(LiteLLMTransport())
            router = Router(ROOT / "data" / "policy.demo.yaml", log=Path(tmp) / "log", transport=timed)
            litellm = litellm_module()
            from litellm._internal_context import is_internal_call

            from toolkit.tools import LOOKUP_INVOICE

            plain = [{"role": "user", "content": "Classify this ticket: my invoice was charged twice."}]

            def bare(messages, **chat):
                token = is_internal_call.set(True)   # litellm's logging and cost calculation off, like routekit's
                try:
                    litellm.completion(model="openai/gpt-4o-mini", api_base=f"{url}/v1", api_key="x",
                                       messages=messages, max_retries=0, timeout=10,
                                       **({"_skip_mcp_handler": True, **chat} if chat else {}))
                finally:
                    is_internal_call.reset(token)

            def routed(messages, **chat):
                result = router.complete("triage", messages, team="bench", **chat)
                assert not chat or result.tool_calls, "the tools case must be answered with a tool call"

            cases = {"a plain chat request": (plain, {}),
                     "an agent's call with a tool (answered with a tool call)": (plain, {"tools": [LOOKUP_INVOICE]})}
            times = {(c, side): [] for c in cases for side in ("bare", "routed")}
            own = {c: [] for c in cases}
            for messages, chat in cases.values():
                for _ in range(50):
                    bare(messages, **chat)
                    routed(messages, **chat)
            for i in range(args.n):
                for case, (messages, chat) in cases.items():
                    for side in (("bare", "routed") if i % 2 else ("routed", "bare")):
                        before = timed.spent
                        t0 = time.perf_counter()
                        (bare if side == "bare" else routed)(messages, **chat)
                        took = time.perf_counter() - t0
                        times[(case, side)].append(took * 1000)
                        if side == "routed":
                            own[case].append((took - (timed.spent - before)) * 1e6)
    finally:
        server.terminate()

    for case in cases:
        b, r = times[(case, "bare")], times[(case, "routed")]
        print(f"{case}:")
        print(f"  bare litellm : p50 {statistics.median(b):6.3f} ms   p95 {pct(b, 0.95):6.3f} ms   (n={len(b)})")
        print(f"  routed       : p50 {statistics.median(r):6.3f} ms   p95 {pct(r, 0.95):6.3f} ms   (n={len(r)})")
        print(f"  routed / bare p50 ratio: {statistics.median(r) / statistics.median(b):.3f}   (target < 1.05)")
        print(f"  routekit's own time per call: p50 {statistics.median(own[case]):.0f} µs, "
              f"p95 {pct(own[case], 0.95):.0f} µs   (target p50 < 150 µs)")

    help_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "toolkit.cli", "--help"], check=True, capture_output=True)
        help_times.append(time.perf_counter() - t0)
    print(f"routekit --help: median {statistics.median(help_times):.3f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
