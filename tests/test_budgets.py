"""Budgets: the ledger (SQLite and a real redis-server), alerts, and the Router end to end."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolkit.budgets import NANO, BudgetLedger, RedisStore, SQLiteStore, WebhookAlert, log_alert, to_nano
from toolkit.policy import BudgetSpec, ModelSpec, Price, RouteSpec, load_policy
from toolkit.router import BudgetDenied, NoEligibleRoute, Router

from .conftest import free_port, read_records
from .services import RedisServer

# A model whose every request is estimated at exactly $0.01: 1000 output tokens at $10 per million.
PRICED = ModelSpec(alias="paid", model="openai/paid-model", tier=2, vendor="acme",
                   price=Price(input_per_mtok=0, output_per_mtok=10))
FREE = ModelSpec(alias="local", model="openai/gemma-3-270m", tier=0, boundary="local",
                 price=Price(input_per_mtok=0, output_per_mtok=0))
UNPRICED = ModelSpec(alias="mystery", model="openai/not-in-any-price-map", tier=2)
ROUTE = RouteSpec(intent="triage", primary="paid")
DAY = 86400.0
T0 = 1_767_225_600.0 - 3600  # 2025-12-31T23:00:00Z: one hour before a new day, month and year


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _ask(ledger, spec=PRICED, team="support", intent="triage", route=ROUTE, max_tokens=1000):
    return ledger.reserve(alias=spec.alias, spec=spec, route=route, team=team, intent=intent, prompt_tokens=5,
                          max_tokens=max_tokens)


@pytest.fixture
def ledger_path(tmp_path):
    return tmp_path / "budgets.sqlite"


# --- the ledger on its own -------------------------------------------------------------------------


def test_scope_matching_by_team_intent_route_provider(ledger_path):
    budgets = [BudgetSpec(name="team", scope={"team": "support"}, limit_usd=1),
               BudgetSpec(name="intent", scope={"intent": "triage"}, limit_usd=1),
               BudgetSpec(name="route", scope={"route": "triage"}, limit_usd=1),
               BudgetSpec(name="vendor", scope={"provider": "acme"}, limit_usd=1),
               BudgetSpec(name="other-vendor", scope={"provider": "openai"}, limit_usd=1),
               BudgetSpec(name="both", scope={"team": "support", "provider": "acme"}, limit_usd=1),
               BudgetSpec(name="global", limit_usd=1)]
    ledger = BudgetLedger(budgets, SQLiteStore(ledger_path), alerts=())
    hold = _ask(ledger)
    assert sorted(n for n, _ in hold.keys) == ["both", "global", "intent", "route", "team", "vendor"]
    # provider scope is the spec's effective vendor, not the litellm prefix ("openai/...")
    assert "other-vendor" not in {n for n, _ in hold.keys}
    ledger.settle(hold, 0.004)
    spent = {s.budget: s.spent_usd for s in ledger.status()}
    assert spent == {"team": 0.004, "intent": 0.004, "route": 0.004, "vendor": 0.004, "other-vendor": 0.0,
                     "both": 0.004, "global": 0.004}
    other = _ask(ledger, team="research", intent="code", route=RouteSpec(intent="code", primary="paid"))
    assert sorted(n for n, _ in other.keys) == ["global", "vendor"]


def test_estimate_uses_max_tokens_or_the_default(ledger_path):
    ledger = BudgetLedger([BudgetSpec(name="g", limit_usd=5)], SQLiteStore(ledger_path), alerts=(),
                          default_output_tokens=300)
    assert _ask(ledger, max_tokens=1000).amount == to_nano(0.01)      # 1000 x $10/M
    assert _ask(ledger, max_tokens=None).amount == to_nano(0.003)     # default 300 x $10/M
    assert ledger.status()[0].reserved_usd == pytest.approx(0.013)


def test_block_names_the_budget_and_downgrade_does_not_block(ledger_path):
    ledger = BudgetLedger([BudgetSpec(name="support-monthly", scope={"team": "support"}, limit_usd=0.02),
                           BudgetSpec(name="triage-daily", scope={"intent": "triage"}, period="daily",
                                      limit_usd=0.015, on_limit="downgrade")],
                          SQLiteStore(ledger_path), alerts=())
    ledger.settle(_ask(ledger), 0.01)
    with pytest.raises(BudgetDenied) as e:
        _ask(ledger)  # the daily budget has $0.005 left
    assert e.value.budget == "triage-daily" and e.value.block is False
    assert "triage-daily" in str(e.value) and "cheaper candidate" in str(e.value)
    ledger2 = BudgetLedger([BudgetSpec(name="support-monthly", scope={"team": "support"}, limit_usd=0.015)],
                           SQLiteStore(ledger_path), alerts=())
    with pytest.raises(BudgetDenied) as e:
        _ask(ledger2)
    assert e.value.budget == "support-monthly" and e.value.block is True and "blocked" in str(e.value)


def test_a_refusal_holds_nothing_anywhere(ledger_path):
    ledger = BudgetLedger([BudgetSpec(name="big", limit_usd=1), BudgetSpec(name="small", scope={"team": "support"},
                                                                          limit_usd=0.005)],
                          SQLiteStore(ledger_path), alerts=())
    with pytest.raises(BudgetDenied, match="small"):
        _ask(ledger)
    assert [s.reserved_usd for s in ledger.status()] == [0.0, 0.0]


def test_zero_cost_models_never_trip_an_exhausted_budget(ledger_path):
    ledger = BudgetLedger([BudgetSpec(name="global", limit_usd=0.01)], SQLiteStore(ledger_path), alerts=())
    ledger.settle(_ask(ledger), 0.01)
    with pytest.raises(BudgetDenied):
        _ask(ledger)
    assert _ask(ledger, spec=FREE) is None
    tool = ModelSpec(alias="regex", tool="toolkit.tools:extract_fields", tier=1)
    assert _ask(ledger, spec=tool) is None


def test_unpriced_model_is_refused_not_counted_as_free(ledger_path):
    ledger = BudgetLedger([BudgetSpec(name="global", limit_usd=100)], SQLiteStore(ledger_path), alerts=())
    with pytest.raises(BudgetDenied) as e:
        _ask(ledger, spec=UNPRICED)
    assert e.value.block is False and "no price" in str(e.value) and "not-in-any-price-map" in str(e.value)


def test_periods_are_utc_days_and_months(ledger_path):
    clock = Clock()
    ledger = BudgetLedger([BudgetSpec(name="day", period="daily", limit_usd=0.02),
                           BudgetSpec(name="month", period="monthly", limit_usd=0.03)],
                          SQLiteStore(ledger_path), alerts=(), clock=clock)
    ledger.settle(_ask(ledger), 0.01)
    ledger.settle(_ask(ledger), 0.01)
    with pytest.raises(BudgetDenied, match="'day'.*2025-12-31"):
        _ask(ledger)
    clock.t += 3600  # 2026-01-01T00:00Z: a new day and a new month
    ledger.settle(_ask(ledger), 0.01)
    status = {s.budget: (s.period_key, s.spent_usd) for s in ledger.status()}
    assert status == {"day": ("2026-01-01", 0.01), "month": ("2026-01", 0.01)}
    clock.t += DAY
    assert {s.budget: s.period_key for s in ledger.status()} == {"day": "2026-01-02", "month": "2026-01"}


def test_a_hold_settles_in_the_period_it_was_taken(ledger_path):
    clock = Clock()
    ledger = BudgetLedger([BudgetSpec(name="day", period="daily", limit_usd=1)], SQLiteStore(ledger_path),
                          alerts=(), clock=clock)
    hold = _ask(ledger)
    clock.t += 2 * 3600
    ledger.settle(hold, 0.01)
    assert ledger.status()[0].spent_usd == 0.0          # the new day starts empty
    assert ledger.store.usage("day", "2025-12-31", clock.t)[0] == to_nano(0.01)


def test_abandoned_holds_expire(ledger_path):
    clock = Clock()
    ledger = BudgetLedger([BudgetSpec(name="g", limit_usd=0.02)], SQLiteStore(ledger_path), alerts=(),
                          hold_ttl_s=60, clock=clock)
    _ask(ledger), _ask(ledger)  # a crashed worker never settles these
    with pytest.raises(BudgetDenied):
        _ask(ledger)
    clock.t += 61
    assert _ask(ledger) is not None


def test_alerts_fire_once_per_threshold_per_period(ledger_path):
    clock = Clock()
    seen = []
    ledger = BudgetLedger([BudgetSpec(name="g", period="daily", limit_usd=0.10, alerts=(0.25, 0.5, 1.0))],
                          SQLiteStore(ledger_path), alerts=[seen.append], clock=clock)
    for _ in range(10):
        ledger.settle(_ask(ledger), 0.01)
    assert [(a.level, a.reason, round(a.spent_usd, 6)) for a in seen] == [(0.25, "spend", 0.03), (0.5, "spend", 0.05),
                                                                          (1.0, "spend", 0.1)]
    with pytest.raises(BudgetDenied):
        _ask(ledger)
    assert len(seen) == 3 and ledger.status()[0].alerts_fired == (0.25, 0.5, 1.0)
    # a second ledger on the same file (another process) does not fire them again
    other = BudgetLedger(ledger.budgets, SQLiteStore(ledger_path), alerts=[seen.append], clock=clock)
    with pytest.raises(BudgetDenied):
        _ask(other)
    assert len(seen) == 3
    clock.t += DAY  # a new period: the thresholds are armed again
    for _ in range(3):
        ledger.settle(_ask(ledger), 0.01)
    assert [(a.level, a.period_key) for a in seen[3:]] == [(0.25, "2026-01-01")]


def test_limit_alert_fires_on_first_refusal_before_spend_reaches_it(ledger_path):
    seen = []
    ledger = BudgetLedger([BudgetSpec(name="g", limit_usd=0.05)], SQLiteStore(ledger_path), alerts=[seen.append])
    for _ in range(4):
        ledger.settle(_ask(ledger), 0.009)   # real costs below the estimates: $0.036 spent
    ledger.settle(_ask(ledger), 0.009)       # $0.045: 80% fired; a $0.01 estimate no longer fits
    with pytest.raises(BudgetDenied):
        _ask(ledger)
    with pytest.raises(BudgetDenied):
        _ask(ledger)
    assert [(a.level, a.reason) for a in seen] == [(0.5, "spend"), (0.8, "spend"), (1.0, "refused")]
    assert "limit" in seen[-1].message() and "'g'" in seen[-1].message()


def test_log_and_callable_hooks_and_a_broken_hook(ledger_path, caplog):
    def broken(alert):
        raise RuntimeError("pager down")

    got = []
    ledger = BudgetLedger([BudgetSpec(name="ops", limit_usd=0.02, alerts=(0.5,))], SQLiteStore(ledger_path),
                          alerts=[broken, log_alert, got.append])
    with caplog.at_level(logging.WARNING, logger="routekit.budgets"):
        ledger.settle(_ask(ledger), 0.01)   # the request path is not disturbed by the broken hook
    assert len(got) == 1 and got[0].level == 0.5
    lines = [r.getMessage() for r in caplog.records]
    assert any("budget 'ops'" in m and "50%" in m for m in lines)
    assert any("hook" in m and "failed" in m for m in lines)


class _Receiver:
    """A webhook receiver: a real HTTP server on 127.0.0.1 collecting JSON bodies."""

    def __init__(self):
        self.bodies: list[dict] = []
        lock = threading.Lock()
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    bodies.append(data)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


def test_webhook_posts_json(ledger_path, receiver):
    hook = WebhookAlert(receiver.url)
    ledger = BudgetLedger([BudgetSpec(name="ops", scope={"team": "support"}, limit_usd=0.02)], SQLiteStore(ledger_path),
                          alerts=[hook])
    ledger.settle(_ask(ledger), 0.01)
    ledger.settle(_ask(ledger), 0.01)
    ledger.close()
    assert sorted(b["level"] for b in receiver.bodies) == [0.5, 0.8, 1.0]
    body = receiver.bodies[0]
    assert body["budget"] == "ops" and body["scope"] == "team=support" and body["limit_usd"] == 0.02
    assert body["message"].startswith("budget 'ops'")


def test_webhook_failure_is_logged_not_raised(ledger_path, caplog):
    hook = WebhookAlert(f"http://127.0.0.1:{free_port()}/nobody", timeout_s=2)
    ledger = BudgetLedger([BudgetSpec(name="ops", limit_usd=0.01, alerts=(1.0,))], SQLiteStore(ledger_path),
                          alerts=[hook])
    with caplog.at_level(logging.ERROR, logger="routekit.budgets"):
        ledger.settle(_ask(ledger), 0.01)
        ledger.close()
    assert any("webhook failed" in r.getMessage() for r in caplog.records)


# --- concurrency: 8 threads x 2 processes on one $1.00 budget ------------------------------------


def _hammer(target: str, hook_url: str, start, out) -> None:
    """One process: 8 threads asking for $0.01 requests until the budget refuses them."""
    hook = WebhookAlert(hook_url)
    ledger = BudgetLedger([BudgetSpec(name="shared", limit_usd=1.00)], _store(target), alerts=[hook])
    granted = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait(60)                             # all 16 threads of both processes start together
        while True:
            try:
                hold = _ask(ledger)
            except BudgetDenied:
                return
            time.sleep(rng.uniform(0, 0.003))      # the call: other requests reserve meanwhile
            ledger.settle(hold, 0.01)
            granted.append(hold.amount)

    threads = [threading.Thread(target=worker, args=(os.getpid() * 100 + i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.close()
    out.put((len(granted), max(granted, default=0)))


def _store(target: str):
    return RedisStore(target) if target.startswith("redis://") else SQLiteStore(target)


def _two_processes(target: str, receiver) -> tuple[int, int]:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(16), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(target, receiver.url, start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert all(n > 0 for n, _ in results), results   # both processes really competed
    return sum(n for n, _ in results), max(e for _, e in results)


def _assert_held_the_line(store, granted: int, estimate: int, receiver) -> None:
    spent, held, requests, unpriced, fired = store.usage("shared", time.strftime("%Y-%m", time.gmtime()), time.time())
    assert estimate == to_nano(0.01)
    assert spent <= to_nano(1.00) + estimate      # the guarantee
    assert spent == granted * to_nano(0.01) and requests == granted and held == 0
    assert granted == 100                         # and no room was lost to the race either
    assert sorted(b["level"] for b in receiver.bodies) == [0.5, 0.8, 1.0]   # each threshold exactly once
    assert fired == (0.5, 0.8, 1.0)


def test_sqlite_two_processes_eight_threads_never_overspend(ledger_path, receiver):
    SQLiteStore(ledger_path)  # created before the workers race to open it
    granted, estimate = _two_processes(str(ledger_path), receiver)
    _assert_held_the_line(SQLiteStore(ledger_path), granted, estimate, receiver)
    assert SQLiteStore(ledger_path)._con().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real redis-server (Debian package) on a free port, durable (AOF, fsync always), stopped after the module."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_store(redis_url):
    store = RedisStore(redis_url)
    store.client.flushdb()
    yield store
    store.close()


def test_redis_two_processes_eight_threads_never_overspend(redis_store, redis_url, receiver):
    granted, estimate = _two_processes(redis_url, receiver)
    _assert_held_the_line(redis_store, granted, estimate, receiver)


def test_redis_store_behaves_like_sqlite(redis_store):
    clock = Clock()
    seen = []
    ledger = BudgetLedger([BudgetSpec(name="day", period="daily", limit_usd=0.03, alerts=(0.5, 1.0)),
                           BudgetSpec(name="team", scope={"team": "support"}, limit_usd=0.02, on_limit="downgrade")],
                          redis_store, alerts=[seen.append], clock=clock, hold_ttl_s=60)
    ledger.settle(_ask(ledger), 0.01)
    hold = _ask(ledger)
    assert {s.budget: (s.spent_usd, s.reserved_usd) for s in ledger.status()} == {"day": (0.01, 0.01),
                                                                                 "team": (0.01, 0.01)}
    with pytest.raises(BudgetDenied) as e:   # team: 0.01 spent + 0.01 held + 0.01 > 0.02
        _ask(ledger)
    assert e.value.budget == "team" and e.value.block is False
    assert ledger.status()[0].reserved_usd == 0.01    # the refusal held nothing in "day"
    ledger.settle(hold, None)                         # an unpriced attempt: counted, not charged
    day = ledger.status()[0]
    assert (day.spent_usd, day.requests, day.unpriced) == (0.01, 2, 1)
    _ask(ledger, team="other")                        # abandoned
    clock.t += 61
    assert ledger.status()[0].reserved_usd == 0.0     # expired
    ledger.settle(_ask(ledger, team="other"), 0.02)
    assert [(a.budget, a.level, a.reason) for a in seen] == [("team", 0.5, "spend"), ("team", 1.0, "refused"),
                                                             ("day", 0.5, "spend"), ("day", 1.0, "spend")]
    clock.t += DAY
    assert ledger.status()[0].spent_usd == 0.0 and ledger.status()[0].period_key == "2026-01-01"


# --- end to end: Router + simulator + SQLite ledger from a policy file ----------------------------


def _budget_policy(sim_env, tmp_path, budgets: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(f"""
models:
  cheap: {{model: openai/gpt-4o-mini, tier: 1, vendor: openai, api_base: "{sim_env.url}/v1"}}
  flash: {{model: openai/gemini-2.5-flash-lite, price_key: gemini/gemini-2.5-flash-lite, tier: 1, vendor: google,
          api_base: "{sim_env.url}/v1"}}
  local: {{model: openai/gemma-3-270m, tier: 0, boundary: local, api_base: "{sim_env.url}/v1",
          price: {{input_per_mtok: 0, output_per_mtok: 0}}}}
routes:
  triage:  {{primary: cheap, fallbacks: [flash, local], min_tier: 1, on_exhausted: fail}}
  private: {{primary: local, boundary: local}}
budgets:
{budgets}
""")
    return p


def _billed(records) -> int:
    return sum(to_nano(a["cost_usd"]) for r in records for a in r["attempts"])


def test_router_blocks_at_a_team_budget_from_the_policy(sim_env, tmp_path, log_dir):
    sim_env.state.set("gpt-4o-mini", {"output_tokens": 40})
    p = _budget_policy(sim_env, tmp_path, "  - {name: support-daily, scope: {team: support}, period: daily, "
                                          "limit_usd: 0.0003}")
    policy = load_policy(p)
    ledger = BudgetLedger.from_policy(policy, alerts=())
    assert ledger.store.path == policy.ledger_path            # the policy's, not the route log's
    router = Router(policy, log=log_dir, budgets=ledger)
    served = 0
    with pytest.raises(NoEligibleRoute, match="support-daily") as e:
        for _ in range(50):
            router.complete("triage", "Is this invoice overdue? Please check the dates.", team="support",
                            max_tokens=64)
            served += 1
    assert 3 <= served < 50
    assert "blocked" in str(e.value) and e.value.record["outcome"] == "blocked"
    records = read_records(log_dir)
    assert sum(r["outcome"] == "served" for r in records) == served
    [status] = ledger.status()
    assert to_nano(status.spent_usd) == _billed(records)        # the ledger charged what the records say
    worst = max(r["cost_usd"] for r in records if r["cost_usd"])
    assert status.spent_usd <= 0.0003 + worst and status.reserved_usd == 0
    router.complete("triage", "hello", team="research", max_tokens=64)   # other teams are not covered

    out = subprocess.run([sys.executable, "-m", "toolkit.cli", "budget", "status", "--policy", str(p), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)["budgets"]
    assert row["budget"] == "support-daily" and row["spent_usd"] == status.spent_usd and row["limit_usd"] == 0.0003
    table = subprocess.run([sys.executable, "-m", "toolkit.cli", "budget", "status", "--policy", str(p)],
                           capture_output=True, text=True).stdout
    assert "support-daily" in table and "team=support" in table and "0.0003" in table


def test_router_downgrades_to_a_cheaper_vendor_never_below_the_floor(sim_env, tmp_path, log_dir):
    sim_env.state.set("gpt-4o-mini", {"output_tokens": 40})
    sim_env.state.set("gemini-2.5-flash-lite", {"output_tokens": 40})
    p = _budget_policy(sim_env, tmp_path, "  - {name: openai-daily, scope: {provider: openai}, period: daily, "
                                          "limit_usd: 0.0002, on_limit: downgrade}\n"
                                          "  - {name: all-daily, period: daily, limit_usd: 0.0004}")
    policy = load_policy(p)
    router = Router(policy, log=log_dir, budgets=BudgetLedger.from_policy(policy, alerts=()))
    served = []
    try:
        for _ in range(60):
            served.append(router.complete("triage", "Classify: refund request for order 1234.", max_tokens=64))
    except NoEligibleRoute as e:
        assert "all-daily" in str(e) and "blocked" in str(e)
    models = [r.served_model for r in served]
    assert models[0] == "cheap" and "flash" in models
    assert models.index("flash") == models.count("cheap")      # once openai is out of budget, it stays out
    downgraded = served[models.index("flash")]
    [skip] = [s for s in downgraded.skipped if s.reason == "budget"]
    assert downgraded.fallback_used and skip.alias == "cheap" and "openai-daily" in skip.detail
    assert "local" not in models                                # tier 0 < min_tier 1: never used to dodge a budget
    assert sim_env.state.stats.get(("openai", "gemma-3-270m"), 0) == 0
    # and the zero-cost local model still serves its own route with every budget exhausted
    assert router.complete("private", "salary data", sensitivity="private").served_model == "local"


# --- a small check that the default log hook is the default ------------------------------------


def test_default_alert_hook_is_a_log_line(ledger_path):
    assert BudgetLedger([], SQLiteStore(ledger_path)).alerts == [log_alert]
    with pytest.raises(ValueError, match="unique"):
        BudgetLedger([BudgetSpec(name="a", limit_usd=1), BudgetSpec(name="a", limit_usd=2)], SQLiteStore(ledger_path))
    assert NANO == 10**9


def test_router_enforces_policy_budgets_by_default_with_the_policy_webhook(sim_env, tmp_path, log_dir, receiver,
                                                                           monkeypatch):
    """No ledger passed in: the Router builds one from the policy, with the policy's state; the budget's webhook
    (named by environment variable, never written in the policy) receives its alerts."""
    monkeypatch.setenv("SUPPORT_BUDGET_HOOK", receiver.url)
    sim_env.state.set("gpt-4o-mini", {"output_tokens": 40})
    p = _budget_policy(sim_env, tmp_path, "  - {name: support-daily, scope: {team: support}, period: daily, "
                                          "limit_usd: 0.0003, alert_webhook_env: SUPPORT_BUDGET_HOOK}\n"
                                          "  - {name: other, scope: {team: nobody}, period: daily, limit_usd: 1}")
    router = Router(p, log=log_dir)
    with pytest.raises(NoEligibleRoute, match="support-daily"):
        for _ in range(50):
            router.complete("triage", "Is this invoice overdue?", team="support", max_tokens=64)
    assert router.budgets.store.path.exists() and not (log_dir / "budgets.sqlite").exists()
    deadline = time.time() + 5  # webhooks are delivered from a background thread
    while len({a["level"] for a in receiver.bodies}) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert {a["budget"] for a in receiver.bodies} == {"support-daily"}
    assert {a["level"] for a in receiver.bodies} == {0.5, 0.8, 1.0}


def test_overspend_stays_within_one_request_when_a_provider_bills_reasoning_past_max_tokens(sim_env, tmp_path,
                                                                                           log_dir):
    """Before: holds assumed output <= max_tokens, so a provider billing reasoning tokens beyond it overspent by
    about 4x one request's estimate under 4 workers.  Holds now cover max_tokens plus the model's reasoning
    allowance: settled spend never passes the limit by more than one request's maximum."""
    sim_env.state.set("gemini-2.5-flash-lite", {"output_tokens": 30, "reasoning_tokens": 1500})
    p = tmp_path / "policy.yaml"
    p.write_text(f"""
models:
  think: {{model: openai/gemini-2.5-flash-lite, price_key: gemini/gemini-2.5-flash-lite, tier: 1,
          api_base: "{sim_env.url}/v1", max_output_tokens: 64, reasoning_allowance_tokens: 2048}}
routes:
  triage: {{primary: think}}
budgets:
  - {{name: tight, period: daily, limit_usd: 0.01}}
""")
    router = Router(p, log=log_dir)
    denied = threading.Event()

    def worker() -> None:
        while not denied.is_set():
            try:
                router.complete("triage", "Is this invoice overdue?", team="t")
            except NoEligibleRoute:
                denied.set()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    served = [r for r in read_records(log_dir) if r["outcome"] == "served"]
    spent = sum(r["cost_usd"] for r in served)
    hold_max = router.budgets.estimate(router.policy.models["think"], router.policy.routes["triage"],
                                       prompt_tokens=max(r["prompt_tokens"] for r in served), max_tokens=None)
    assert served and all(r["usage.reasoning_tokens"] == 1500 for r in served)
    assert spent <= 0.01 + hold_max
    assert max(r["cost_usd"] for r in served) <= hold_max       # each request stayed within its hold
