"""Many hosts, for real: Routers on two network namespaces made by this test, redis-server and the simulator in a
third, sharing one policy's state through Redis (toolkit/state).  Where namespaces cannot be made (not root, no
``ip``), the same run uses separate processes on 127.0.0.1 — the test prints which ran.

Each "host" is a process of tests/scaleout_worker.py with its own route log and its own state directory, so the
only thing the hosts share is Redis.  The run shows, in order: a disable issued on host A is obeyed on both
hosts (the time it took is printed); a circuit opened by failures host A saw makes host B skip that candidate
with ``circuit_open`` without asking it; a monthly budget under 8 concurrent workers (4 threads on each host) is
never overspent by more than one request's estimate; Redis killed (``kill -9``) mid-run: routing continues,
records say ``state: degraded-local``, none is lost; Redis back (AOF): state resumes (a disable made before
the kill is still obeyed, records say ``redis`` again).  Figures are printed (``-s``) — never compared to a
clock: the issue's targets (a disable seen everywhere within 1 s) are read from them and from
bench/state_backend.py.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, free_port, wait_for
from .services import RedisServer

pytestmark = pytest.mark.slow

PASSWORD = "scale-out-redis-pw-42"
SUBNETS = (("10.231.17.2", "10.231.17.1"), ("10.231.17.6", "10.231.17.5"))   # two /30s: (host, services)

POLICY = """
models:
  fast-a: {model: openai/gpt-4o-mini, tier: 1, api_base: "${ROUTEKIT_SIM_URL:-http://127.0.0.1:1}/v1", timeout_s: 5}
  fast-b: {model: anthropic/claude-haiku-4-5, tier: 1, api_base: "${ROUTEKIT_SIM_URL:-http://127.0.0.1:1}", timeout_s: 5}
  paid:   {model: openai/gpt-4.1-mini, tier: 1, api_base: "${ROUTEKIT_SIM_URL:-http://127.0.0.1:1}/v1", timeout_s: 5,
           max_output_tokens: 2000}
routes:
  triage: {primary: fast-a, fallbacks: [fast-b]}
  spend:  {primary: paid, fallbacks: []}
budgets:
  - {name: spend-monthly, scope: {intent: spend}, period: monthly, limit_usd: 0.08}
circuit: {failures: 3, cooldown_s: 4}
state: {backend: redis, url_env: ROUTEKIT_REDIS_URL, refresh_s: 0.2}
"""
BEHAVIOURS = "default: {latency_ms: 5}\nmodels:\n  gpt-4.1-mini: {output_tokens: 2000}\n"


class Netns:
    """Network namespaces owned by this test: two hosts and a services namespace, joined by veth pairs on two
    private /30s.  ``ok`` is False where they cannot be made."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.hosts, self.services = (f"rk{tag}a", f"rk{tag}b"), f"rk{tag}s"
        self.ok, self.why = False, ""
        if os.geteuid() != 0 or shutil.which("ip") is None:
            self.why = "not root or no ip(8) (Debian's iproute2)"
            return
        if any(ip in subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
               for pair in SUBNETS for ip in pair):
            self.why = "the test's /30s are in use on this machine"
            return
        try:
            for ns in (*self.hosts, self.services):
                self._ip("netns", "add", ns)
                self._ip("-n", ns, "link", "set", "lo", "up")
            for i, (ns, (host_ip, svc_ip)) in enumerate(zip(self.hosts, SUBNETS)):
                end, peer = f"rk{tag}h{i}", f"rk{tag}s{i}"
                self._ip("link", "add", end, "type", "veth", "peer", "name", peer)
                self._ip("link", "set", end, "netns", ns)
                self._ip("link", "set", peer, "netns", self.services)
                self._ip("-n", ns, "addr", "add", f"{host_ip}/30", "dev", end)
                self._ip("-n", self.services, "addr", "add", f"{svc_ip}/30", "dev", peer)
                self._ip("-n", ns, "link", "set", end, "up")
                self._ip("-n", self.services, "link", "set", peer, "up")
            self.ok = True
        except subprocess.CalledProcessError as e:
            self.why = f"ip {' '.join(e.cmd[1:])}: {e.stderr.strip()}"
            self.close()

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def run_in(self, ns: str | None) -> list[str]:
        return ["ip", "netns", "exec", ns] if ns and self.ok else []

    def close(self) -> None:
        for ns in (*self.hosts, self.services):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)   # takes its veth ends with it


class Host:
    """One worker process (tests/scaleout_worker.py) and its pipe."""

    def __init__(self, name: str, prefix: list[str], env: dict[str, str]):
        self.name = name
        self.log_dir = Path(env["ROUTEKIT_LOG_DIR"])
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "tests.scaleout_worker"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"host {self.name} exited ({self.proc.wait(10)})")
        return json.loads(line)

    def ask(self, cmd: str, **kw) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def records(self) -> list[dict]:
        return [json.loads(line) for f in sorted(self.log_dir.glob("date=*/*.jsonl"))
                for line in f.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("exit")
            except (OSError, RuntimeError, ValueError):
                pass
            self.proc.wait(20)


@pytest.fixture
def cluster(tmp_path):
    """Two hosts, Redis (AOF, a password) and the simulator, in namespaces when possible."""
    net = Netns()
    procs: list = []
    hosts: list[Host] = []
    try:
        services = net.services if net.ok else None
        redis = RedisServer(tmp_path / "redis", password=PASSWORD, netns=services,
                            binds=tuple(svc for _, svc in SUBNETS) if net.ok else ("127.0.0.1",))
        redis.workdir.mkdir()
        redis.start()
        procs.append(redis)
        sim_port = free_port()
        (tmp_path / "sim.yaml").write_text(BEHAVIOURS)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        sim = subprocess.Popen([*net.run_in(services), sys.executable, "-m", "toolkit.cli", "sim", "serve",
                                "--host", "0.0.0.0" if net.ok else "127.0.0.1", "--port", str(sim_port),
                                "--behaviours", str(tmp_path / "sim.yaml")], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL)
        procs.append(sim)
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        for i, name in enumerate(("a", "b")):
            svc = SUBNETS[i][1] if net.ok else "127.0.0.1"
            henv = {**env, "ROUTEKIT_POLICY": str(policy), "ROUTEKIT_LOG_DIR": str(tmp_path / f"log-{name}"),
                    "ROUTEKIT_STATE_DIR": str(tmp_path / f"state-{name}"), "ROUTEKIT_SIM_URL": f"http://{svc}:{sim_port}",
                    "ROUTEKIT_REDIS_URL": redis.url_for(svc), "ROUTEKIT_USER": f"oncall-{name}"}
            henv.pop("ROUTEKIT_OVERRIDES", None)
            hosts.append(Host(name, net.run_in(net.hosts[i] if net.ok else None), henv))
        for _ in range(100):   # the simulator answers
            if "error" not in hosts[0].ask("sim_stats"):
                break
            time.sleep(0.1)
        mode = (f"network namespaces {', '.join(net.hosts)} (hosts) and {net.services} (redis-server, simulator), "
                f"veth pairs on {SUBNETS[0][1]}/30 and {SUBNETS[1][1]}/30") if net.ok else \
            f"separate processes on 127.0.0.1 (namespaces could not be made: {net.why})"
        print(f"\nscale-out run: {mode}")
        yield {"hosts": hosts, "redis": redis, "policy": policy, "net": net, "env": env, "tmp": tmp_path}
    finally:
        for h in hosts:
            h.close()
        for p in procs:
            if isinstance(p, RedisServer):
                p.stop()
            elif p.poll() is None:
                p.terminate()
                p.wait(10)
        net.close()


# each poll asks both hosts over their pipes: less often, and a longer bound (four processes share two cores)
until = functools.partial(wait_for, limit_s=15.0, every=0.05)


def routekit_in(c: dict, host: int, *args: str) -> subprocess.CompletedProcess:
    """A ``routekit`` command run on one host (inside its namespace)."""
    net, h = c["net"], c["hosts"][host]
    env = {**c["env"], "ROUTEKIT_REDIS_URL": _url(c, host), "ROUTEKIT_USER": "oncall"}
    env["ROUTEKIT_STATE_DIR"] = str(c["tmp"] / f"state-{h.name}")
    return subprocess.run([*net.run_in(net.hosts[host] if net.ok else None), sys.executable, "-m", "toolkit.cli",
                           *args, "--policy", str(c["policy"])], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _url(c: dict, host: int) -> str:
    return c["redis"].url_for(SUBNETS[host][1] if c["net"].ok else "127.0.0.1")


def test_many_hosts_share_one_state(cluster):
    c = cluster
    a, b = c["hosts"]
    assert a.hello["state"] == b.hello["state"] == "redis"
    figures: dict[str, object] = {}

    # 1. the kill switch: a disable issued on host A, obeyed by both hosts' Routers
    for h in (a, b):
        h.ask("start", intent="triage", threads=2)
    time.sleep(1.0)
    out = routekit_in(c, 0, "disable", "fast-a", "--reason", "scale-out drill")
    assert out.returncode == 0, out.stderr
    until(lambda: all("fast-a" in h.ask("state")["disabled"] for h in (a, b)), "the disable reaches both hosts")
    time.sleep(1.0)   # requests made after it
    runs = {h.name: h.ask("stop")["results"] for h in (a, b)}
    status = json.loads(routekit_in(c, 1, "status", "--json").stdout)   # read from host B
    at = status["history"][-1]["at"]
    assert status["history"][-1]["action"] == "disable" and status["history"][-1]["by"] == "oncall"
    seen = {}
    for name, results in runs.items():
        results.sort(key=lambda r: r["t0"])
        off = [i for i, r in enumerate(results) if ["fast-a", "disabled"] in r["skipped"]]
        assert off, f"host {name} never obeyed the disable"
        assert all(["fast-a", "disabled"] in r["skipped"] for r in results[off[0]:])   # and from then on, always
        assert all(r["served"] == "fast-b" for r in results[off[0]:])
        seen[name] = max(0.0, results[off[0]]["t0"] - at)   # the first request on this host that obeyed it
    figures["disable_seen_everywhere_s"] = round(max(seen.values()), 3)
    assert routekit_in(c, 1, "enable", "fast-a").returncode == 0

    # 2. circuits: host A sees the failures, host B skips the candidate without asking it
    a.ask("sim", model="gpt-4o-mini", behaviour={"error_rate": 1.0, "error_status": 500})
    until(lambda: all("fast-a" not in h.ask("state")["disabled"] for h in (a, b)), "the enable reaches both hosts")
    for _ in range(3):
        r = a.ask("one", intent="triage")
        assert r["served"] == "fast-b" and ["fast-a", "disabled"] not in r["skipped"]
    before = a.ask("sim_stats")["models"].get("gpt-4o-mini", 0)
    figures["circuit_seen_on_other_host_s"] = round(
        until(lambda: "fast-a" in b.ask("state")["open"], "host B reads the circuit host A opened"), 3)
    r = b.ask("one", intent="triage")
    assert ["fast-a", "circuit_open"] in r["skipped"] and r["served"] == "fast-b"
    assert a.ask("sim_stats")["models"].get("gpt-4o-mini", 0) == before
    a.ask("sim", model="gpt-4o-mini", behaviour={"error_rate": 0.0})

    # 3. a monthly budget under 8 concurrent workers (4 threads on each host)
    for h in (a, b):
        h.ask("start", intent="spend", team="growth", threads=4, until_blocked=True)
    spend = {h.name: h.ask("stop", wait=True)["results"] for h in (a, b)}
    served = [r for rs in spend.values() for r in rs if r["outcome"] == "served"]
    assert served and all(any(r["outcome"] == "blocked" for r in rs) for rs in spend.values())
    ledger = {s["budget"]: s for s in a.ask("budget")["budgets"]}["spend-monthly"]
    estimate = _estimate(c["policy"])
    logged = sum(r["cost_usd"] for h in (a, b) for r in h.records() if r["intent"] == "spend" and r["cost_usd"])
    assert logged == pytest.approx(ledger["spent_usd"], rel=1e-9)
    overspend = max(0.0, logged - ledger["limit_usd"])
    assert overspend <= estimate, f"overspent by ${overspend:.6f}, more than one request's estimate ${estimate:.6f}"
    figures.update(budget_limit_usd=ledger["limit_usd"], budget_spent_usd=round(logged, 6),
                   budget_overspend_usd=round(overspend, 6), one_request_estimate_usd=round(estimate, 6),
                   budget_requests_served=len(served))

    # 4. Redis killed mid-run, then back (AOF): a disable made before the kill holds throughout
    until(lambda: all("fast-a" not in h.ask("state")["open"] for h in (a, b)), "phase 2's circuit cools down")
    assert routekit_in(c, 0, "disable", "fast-b", "--reason", "before the kill").returncode == 0
    until(lambda: all("fast-b" in h.ask("state")["disabled"] for h in (a, b)), "the disable reaches both hosts")
    for h in (a, b):
        h.ask("start", intent="triage", threads=2)
    time.sleep(1.0)
    c["redis"].kill9()
    figures["redis_down_noticed_s"] = round(
        until(lambda: all(h.ask("state")["mode"] == "degraded-local" for h in (a, b)), "both hosts notice"), 3)
    noticed = time.time()
    time.sleep(1.5)
    restarting = time.time()   # Redis may answer before start() returns: a request ending then is 'redis'
    c["redis"].start()
    until(lambda: all(h.ask("state")["mode"] == "redis" for h in (a, b)), "both hosts resume shared state")
    time.sleep(1.0)   # requests made after it
    runs = {h.name: h.ask("stop")["results"] for h in (a, b)}
    lost = 0
    for h in (a, b):
        results = sorted(runs[h.name], key=lambda r: r["t0"])
        assert all(r["outcome"] == "served" for r in results), "routing stopped while Redis was down"
        assert all(["fast-b", "disabled"] in r["skipped"] for r in results)   # the shared disable, throughout
        logged = {r["request_id"]: r for r in h.records()}
        lost += sum(1 for r in results if r["request_id"] not in logged)
        during = [r for r in results if noticed < r["t0"] and r["t1"] < restarting]
        assert during and all(logged[r["request_id"]]["state"] == "degraded-local" for r in during)
        assert all("unreachable" in (logged[r["request_id"]]["warnings"] or "") for r in during)
        assert results[-1]["state"] == "redis"                              # state resumes
        figures[f"host_{h.name}_requests_across_restart"] = len(results)
        figures[f"host_{h.name}_degraded_records"] = sum(1 for r in results if r["state"] == "degraded-local")
        for r in logged.values():
            assert PASSWORD not in json.dumps(r)
    assert lost == 0
    figures["records_lost_across_redis_restart"] = lost
    print("scale-out figures: " + json.dumps(figures))
    (c["tmp"] / "figures.json").write_text(json.dumps(figures, indent=1))


def _estimate(policy_path: Path) -> float:
    """One request's maximum on the budgeted route, as the ledger holds it."""
    from toolkit.budgets import BudgetLedger
    from toolkit.policy import load_policy
    from toolkit.state.ledger import open_store

    policy = load_policy(policy_path)
    ledger = BudgetLedger(policy.budgets, open_store(":memory:"), alerts=())
    return ledger.estimate(policy.models["paid"], policy.routes["spend"], prompt_tokens=64, max_tokens=None)
