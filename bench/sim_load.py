"""How much the simulator itself adds: streaming requests per second and p50/p99 latency.

The simulator runs in its own process (``routekit sim serve``, every model at latency_ms 0, so all the
time measured is the simulator's HTTP handling and framing plus the client's), the load generator
(aiohttp) in this one.  Requests are streamed and spread round-robin over the seven protocols; each is
read to its end and checked (status 200, its protocol's end marker).  Prints, for one request at a time
and for N at once: requests/s, p50/p99 latency, errors; then p50 per protocol.

    .venv/bin/python bench/sim_load.py [--concurrency 200] [--requests 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolkit.sim import PROTOCOLS, wire_request  # noqa: E402

END = {"openai": b"data: [DONE]", "azure": b"data: [DONE]", "openrouter": b"data: [DONE]",
       "anthropic": b"message_stop", "gemini": b'"finishReason": "STOP"', "bedrock": b"messageStop",
       "ollama": b'"done": true'}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def start_sim(port: int) -> subprocess.Popen:
    scenario = Path(tempfile.mkdtemp()) / "zero-latency.yaml"
    scenario.write_text("default: {latency_ms: 0}\n")
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "sim", "serve", "--port", str(port),
                             "--scenario", str(scenario)], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the simulator did not start")


async def run(url: str, n: int, concurrency: int, bar=None) -> tuple[float, list[tuple[str, float]], int]:
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    times: list[tuple[str, float]] = []
    errors = 0
    counting = False

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal errors
        protocol = PROTOCOLS[i % len(PROTOCOLS)]
        path, body = wire_request(protocol, f"bench-{i % 50}", "Count the words of this short prompt.", stream=True)
        async with gate:
            t0 = time.perf_counter()
            try:
                async with session.post(url + path, json=body) as r:
                    data = await r.read()
                ok = r.status == 200 and END[protocol] in data
            except aiohttp.ClientError:
                ok = False
            times.append((protocol, (time.perf_counter() - t0) * 1000))
            errors += not ok
            if bar is not None and counting:
                bar.update()

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as session:
        for i in range(min(50, n)):   # warm-up: connections, the simulator's first responses
            await one(session, i)
        times.clear()
        errors, counting = 0, True
        t0 = time.perf_counter()
        await asyncio.gather(*(one(session, i) for i in range(n)))
        wall = time.perf_counter() - t0
    return wall, times, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    args = ap.parse_args()

    from tqdm import tqdm

    from toolkit.demo import free_port

    port = args.port or free_port()
    sim = start_sim(port)
    url = f"http://127.0.0.1:{port}"
    try:
        for concurrency, n in ((1, min(500, args.requests)), (args.concurrency, args.requests)):
            with tqdm(total=n, desc=f"{concurrency} at once", unit="req", leave=False) as bar:
                wall, times, errors = asyncio.run(run(url, n, concurrency, bar))
            ms = [t for _, t in times]
            print(f"{concurrency:>4} at once: {n / wall:7.0f} streamed requests/s   p50 {statistics.median(ms):6.2f} ms"
                  f"   p99 {pct(ms, 0.99):7.2f} ms   errors {errors}/{n}")
            if concurrency == 1:
                per = {p: statistics.median([t for q, t in times if q == p]) for p in PROTOCOLS}
                print("        p50 per protocol, one at a time: "
                      + "  ".join(f"{p} {v:.2f} ms" for p, v in per.items()))
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main()
