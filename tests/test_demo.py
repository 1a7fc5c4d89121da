"""`make demo` end to end, in tmp: history, routed traffic, quality measurements, the playbook, the dashboards."""
from __future__ import annotations

import json

import polars as pl

from toolkit import demo
from toolkit.routelog import scan_log

from .conftest import DEMO_POLICY
from .test_notebooks import NOTEBOOKS, run_as_opened


def test_demo_routes_measures_and_publishes_every_dashboard(local_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEKIT_LOCAL_URL", local_model)
    # the demo points the process's state at its own folder; monkeypatch puts the environment back afterwards
    monkeypatch.setenv("ROUTEKIT_OVERRIDES", str(tmp_path / "demo" / "overrides.json"))
    monkeypatch.setenv("ROUTEKIT_STATE_DIR", str(tmp_path / "demo" / "state"))
    lines: list[str] = []
    summary = demo.run(str(DEMO_POLICY), str(tmp_path / "demo"), echo=lines.append,
                       reports_dir=str(tmp_path / "reports"), history_requests=5_000)
    text = "\n".join(lines)

    # the honest-fallback rules, as printed: one loud failure below the floor, one degraded tool serve
    assert summary["failed"] == 1 and summary["degraded"] == 1 and summary["fallbacks"] >= 4 and summary["drill_ok"]
    assert "FAILED LOUDLY" in text and "[DEGRADED" in text and summary["sim_requests"] > summary["served"]

    # one log holds the 90-day history and today's routed traffic
    log = tmp_path / "demo" / "routelog"
    records = scan_log(log).frame.select(pl.col("timestamp").dt.date().alias("day"), "team", "shadow_of").collect()
    assert records["day"].n_unique() == 91
    assert {"demo", "eval", "drill"} <= set(records["team"]) and records["shadow_of"].is_not_null().sum() == 36

    # quality: the simulator's skills order the baseline as the tiers do; the drill had no silent downgrade
    quality = tmp_path / "demo" / "quality"
    scores = dict(pl.read_csv(quality / "baseline" / "summary.csv").filter(intent="*")
                  .select("model", "mean_score").iter_rows())
    assert scores["strong-openai"] > scores["mid-anthropic"] > min(scores["fast-openai"], scores["fast-google"])
    drill = json.loads((quality / "drills" / "primary-down" / "drill_report.json").read_text())
    assert drill["totals"]["silent_downgrades"] == 0 and drill["ok"]
    assert json.loads((quality / "shadow.json").read_text())[0]["pairs"] == 36

    # the playbook on the demo's own evidence: the drilled intents pass the drill check, triage's kill switch was
    # rehearsed (on-call disabled its primary, then enabled it), the checklist and the blast radius are printed
    from toolkit.playbook import readiness
    from toolkit.playbook.readiness import CHECKS
    from toolkit.policy import load_policy

    checks = {(c.intent, c.check): c for c in readiness(load_policy(DEMO_POLICY), quality=[quality],
                                                        overrides=tmp_path / "demo" / "overrides.json").checks}
    assert all(checks[(i, "drill")].ok for i in ("triage", "extraction", "code"))
    assert not checks[("synthesis", "drill")].ok
    assert checks[("triage", "kill_switch")].ok and "on-call" in checks[("triage", "kill_switch")].detail
    assert checks[("triage", "baseline")].ok                    # fast-openai, fast-google, mid-anthropic measured
    assert "readiness of " in text and "blast radius in " in text and "recommend for triage" in text
    passed, total = map(int, summary["ready_checks"].split("/"))
    assert 0 < passed < total == len(CHECKS) * len(load_policy(DEMO_POLICY).routes)

    # the dashboards: an index linking one page per notebook
    index = (tmp_path / "reports" / "index.html").read_text()
    for page in ("spend_review", "latency", "quality", "what_if", "readiness"):
        assert (tmp_path / "reports" / f"{page}.html").stat().st_size > 10_000 and f'href="{page}.html"' in index
    spend = (tmp_path / "reports" / "spend_review.html").read_text()
    assert "growth-monthly" in spend                                     # the demo's budgets
    assert "(30 days) vs " in spend          # what changed: the history's last 30 days vs the 30 before
    for provider in ("anthropic", "openai", "gemini", "azure", "bedrock", "openrouter", "ollama_chat"):
        assert f"&quot;{provider}&quot;" in spend or f">{provider}<" in spend, provider   # named in the review

    # then every notebook, opened from notebooks/ beside the demo's output and run with no parameter changed, reads
    # the demo's log, policy and quality tables
    monkeypatch.delenv("ROUTEKIT_LOG_DIR", raising=False)
    monkeypatch.delenv("ROUTEKIT_POLICY", raising=False)
    shown = run_as_opened(tmp_path)
    for name in NOTEBOOKS:
        assert "**Log** `../demo/routelog`" in shown[name], name
    assert "No baseline yet" not in shown["quality"] and "No drill report yet" not in shown["quality"]
    assert "tier None" not in shown["quality"]          # tiers read from the demo's policy
    assert "**as logged**" in shown["what_if"]          # the demo's traffic as one more scenario
