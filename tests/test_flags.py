"""Flags and parameters that take a day, a count, a share, a port, a file or a route log refuse what is not one,
naming it, before anything is read or written. Days given as text go through routelog.parse_day / parse_period (a
period that ends before it starts is refused too), logs through routelog.require_log; counts, shares and ports
through commands/common.py's argparse types."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.test_rollups import DAY0, synth_records
from toolkit import rollups
from toolkit.cli import main
from toolkit.errors import BadInput
from toolkit.resources import find
from toolkit.routelog import RouteLogWriter

POLICY = str(find("data/policy.example.yaml"))
OUTCOMES = str(find("data/outcomes/routellm-gsm8k.csv"))


@pytest.fixture
def log(tmp_path):
    """A route log of two closed days, not yet compacted (so `log compact` has work it must not start)."""
    import random

    root = tmp_path / "routelog"
    with RouteLogWriter(root) as w:
        for i in range(2):
            w.write_records(synth_records(random.Random(i), DAY0 + timedelta(days=i), 20))
    return root


def files(root) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")} if root.exists() else {}


@pytest.mark.parametrize("flag, argv", [
    ("--since", ["stats", "--log", "{log}", "--since", "{bad}"]),
    ("--until", ["stats", "--log", "{log}", "--until", "{bad}"]),
    ("--before", ["log", "compact", "--log", "{log}", "--before", "{bad}"]),
    ("--end", ["log", "synth", "--log", "{new}", "--days", "2", "--requests", "10", "--end", "{bad}"]),
    ("--since", ["log", "import", "litellm-postgres", "postgresql://nobody@127.0.0.1:9/x", "--log", "{new}",
                 "--since", "{bad}"]),
    ("--since", ["policy", "diff", POLICY, POLICY, "--log", "{log}", "--since", "{bad}"]),
    ("--until", ["policy", "diff", POLICY, POLICY, "--log", "{log}", "--until", "{bad}"]),
    ("--deprecated-by", ["blast-radius", "--policy", POLICY, "--deprecated-by", "{bad}"]),
])
@pytest.mark.parametrize("bad", ["2026-02-30", "yesterday", "20261001"])
def test_a_day_flag_refuses_what_is_not_a_day_naming_the_flag_and_touching_nothing(log, tmp_path, capsys,
                                                                                     flag, argv, bad):
    new = tmp_path / "new-log"
    before = files(log)
    with pytest.raises(SystemExit) as exit_:
        main([a.format(log=log, new=new, bad=bad) for a in argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"argument {flag}: {bad!r} is not a day (YYYY-MM-DD)" in err, err
    assert "Traceback" not in err
    assert files(log) == before and not new.exists()


@pytest.mark.parametrize("argv", [
    ["stats", "--log", "{log}"],
    ["policy", "diff", POLICY, POLICY, "--log", "{log}"],
])
def test_a_period_that_ends_before_it_starts_is_refused(log, capsys, argv):
    code = main([a.format(log=log) for a in argv] + ["--since", "2026-10-02", "--until", "2026-10-01"])
    assert code == 2
    assert "--until 2026-10-01 is before --since 2026-10-02" in capsys.readouterr().err


def test_a_well_formed_day_still_works(log, capsys):
    today = datetime.now(timezone.utc).date()
    assert main(["log", "compact", "--log", str(log), "--before", today.isoformat()]) == 0
    assert "compacted 2 days" in capsys.readouterr().out


@pytest.mark.parametrize("params, said", [
    (["-p", "since", "2026-02-30"], "since: '2026-02-30' is not a day (YYYY-MM-DD)"),
    (["-p", "until", "20261001"], "until: 20261001 is not a day (YYYY-MM-DD)"),   # (-p makes it a number)
    (["-p", "since", "2026-10-02", "-p", "until", "2026-10-01"], "until 2026-10-01 is before since 2026-10-02"),
])
def test_a_report_refuses_a_bad_period_before_a_kernel_starts(log, tmp_path, capsys, params, said):
    out = tmp_path / "reports"
    assert main(["report", "spend", "--log", str(log), "--out", str(out), "--no-progress", *params]) != 0
    assert said in capsys.readouterr().err
    assert not list(out.glob("*.ipynb"))   # no notebook was run


def test_the_library_refuses_them_too(log):
    with pytest.raises(BadInput, match="until 2026-10-01 is before since 2026-10-02"):
        rollups.load_rollups(log, since="2026-10-02", until="2026-10-01")
    with pytest.raises(BadInput, match="since: '2026-10-1' is not a day"):
        rollups.load_rollups(log, since="2026-10-1")
    with RouteLogWriter(log) as w, pytest.raises(BadInput, match="day: '2026-02-30' is not a day"):
        w.write_lines("2026-02-30", ['{"timestamp":"2026-02-30T00:00:00Z"}'])
    assert not (log / "date=2026-02-30").exists()


@pytest.mark.parametrize("argv, flag, said", [
    (["log", "synth", "--log", "{new}", "--days", "0"], "--days", "'0' is not a whole number at least 1"),
    (["log", "synth", "--log", "{new}", "--requests", "-5"], "--requests", "'-5' is not a whole number at least 1"),
    (["keys", "--policy", POLICY, "--max-age", "0"], "--max-age", "'0' is not a whole number at least 1"),
    (["eval", "baseline", "--policy", POLICY, "--prompts", POLICY, "--models", "x", "--out", "{new}",
      "--concurrency", "0"], "--concurrency", "'0' is not a whole number at least 1"),
    (["eval", "shadow", "--policy", POLICY, "--min-agreement", "1.5"], "--min-agreement",
     "'1.5' is not a share within 0..1"),
    (["estimate", "--model", "gpt-4o-mini", "--input-tokens", "10", "--cache-hit-rate", "nan"], "--cache-hit-rate",
     "'nan' is not a share within 0..1"),
    (["sim", "serve", "--port", "99999"], "--port", "'99999' is not a port (1-65535)"),
    (["research", "pair", OUTCOMES, "--bins", "0"], "--bins", "'0' is not a whole number at least 1"),
    (["research", "frontier", OUTCOMES, "--cascade", "1", "--verifier-error", "2"], "--verifier-error",
     "'2' is not a share within 0..1"),
    (["local", "serve", "--port", "0"], "--port", "'0' is not a port (1-65535)"),
    (["sim", "matrix", "--timeout", "0"], "--timeout", "'0' is not a number above 0"),
    (["recommend", "--intent", "math", "--outcomes", OUTCOMES, "--max-p95-ms", "-5"], "--max-p95-ms",
     "'-5' is not a number above 0"),
    (["readiness", "--policy", POLICY, "--deprecation-warning", "-3"], "--deprecation-warning",
     "'-3' is not a whole number (0 or more)"),
])
def test_a_count_or_share_flag_refuses_what_is_not_one(tmp_path, capsys, argv, flag, said):
    new = tmp_path / "new"
    with pytest.raises(SystemExit) as exit_:
        main([a.format(new=new) for a in argv])
    assert exit_.value.code == 2
    assert f"argument {flag}: {said}" in capsys.readouterr().err
    assert not new.exists()


def test_the_research_library_refuses_them_too():
    from toolkit.research import load_outcomes
    from toolkit.research.replay import cascade, random_router_curve

    o = load_outcomes(OUTCOMES)   # before: ZeroDivisionError (0 bins), a silent error rate of 2 or -1
    strong, weak = sorted(o.models)[:2]
    with pytest.raises(BadInput, match="at least 1 bin, not 0"):
        random_router_curve(o, strong, weak, bins=0)
    with pytest.raises(BadInput, match="error rate is a share within 0..1, not -1"):
        cascade(o, threshold=1.0, error_rate=-1)


@pytest.mark.parametrize("argv, said", [
    (["drill", "--policy", POLICY, "--scenario", "{missing}", "--prompts", "{prompts}"], "routekit drill: {missing}"),
    (["sim", "serve", "--behaviours", "{missing}"], "routekit sim: bad behaviour file: {missing}"),
    (["log", "import", "otel", "{missing}", "--log", "{new}"], "routekit log import: {missing}"),
])
def test_a_missing_file_is_named_as_path_and_reason(tmp_path, capsys, argv, said):
    # before: Python's "[Errno 2] No such file or directory: '...'"
    paths = {"missing": tmp_path / "nope.yaml", "new": tmp_path / "new",
             "prompts": find("data/prompts/triage.jsonl")}
    assert main([a.format(**paths) for a in argv]) == 2
    assert said.format(**paths) + ": No such file or directory" in capsys.readouterr().err
    assert not paths["new"].exists()


@pytest.mark.parametrize("argv", [
    ["log", "compact", "--log", "{typo}"],
    ["policy", "diff", POLICY, POLICY, "--log", "{typo}"],
    ["estimate", "--from-log", "{typo}"],
    ["eval", "shadow", "--policy", POLICY, "--log", "{typo}"],
])
def test_a_log_that_is_not_there_is_named_not_read_as_empty(tmp_path, capsys, argv):
    # before: log compact said "compacted 0 days", policy diff replayed "0 of 0 requests", estimate said "no served
    # requests to fit", eval shadow "no shadow records": a typo read as an empty log
    typo = tmp_path / "typo"
    assert main([a.format(typo=typo) for a in argv]) == 2
    assert f"no route log at {typo} (a directory of date=YYYY-MM-DD partitions)" in capsys.readouterr().err
    assert not typo.exists()
    # ...nor is a directory that is not a log (its parent, a project): before, read as an empty log too
    project = tmp_path / "project"
    project.mkdir()
    (project / "policy.yaml").write_text("x")
    assert main([a.format(typo=project) for a in argv]) == 2
    assert f"{project} holds no date=YYYY-MM-DD partitions: not a route log" in capsys.readouterr().err
    assert [p.name for p in project.iterdir()] == ["policy.yaml"]


def test_a_cascade_threshold_given_twice_is_one_policy(capsys):
    assert main(["research", "frontier", OUTCOMES, "--cascade", "1", "--cascade", "1", "--json"]) == 0
    policies = [p["policy"] for p in json.loads(capsys.readouterr().out)["policies"]]
    assert sum(p.startswith("cascade(") for p in policies) == 1, policies   # before: the same row twice
    # (and --json now carries every evaluated policy the table shows, the cascade included: it had only the models)


def test_an_empty_prompt_is_refused_in_the_words_of_the_command(tmp_path, capsys, monkeypatch):
    # before: the library's "messages must be ... a non-empty list of {'role': ...}" (and, earlier still, a paid call)
    import io

    for argv, stdin in ((["route", "--intent", "triage", ""], ""), (["route", "--intent", "triage", "-"], " \n")):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        assert main([*argv, "--log", str(tmp_path / "log")]) == 2
        assert 'the prompt is empty (give its text, or "-" to read it from stdin)' in capsys.readouterr().err
    assert not (tmp_path / "log").exists()
