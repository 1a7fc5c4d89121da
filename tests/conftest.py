"""Shared fixtures: the real simulator, the real local model, a route log per test."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
DEMO_POLICY = DATA / "policy.demo.yaml"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# A Router built without a log dir still keeps its budget ledger somewhere: not in the working copy.
os.environ.setdefault("ROUTEKIT_LOG_DIR", tempfile.mkdtemp(prefix="routekit-tests-log-"))
# Policies' state (overrides, circuits, budget ledgers) and spooled records: never in the working copy or $HOME.
os.environ.setdefault("ROUTEKIT_STATE_DIR", tempfile.mkdtemp(prefix="routekit-tests-state-"))
os.environ.setdefault("ROUTEKIT_SPOOL_DIR", tempfile.mkdtemp(prefix="routekit-tests-spool-"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sim():
    from toolkit.sim import SimServer

    with SimServer() as server:
        yield server


@pytest.fixture
def sim_env(sim, monkeypatch, tmp_path):
    """The simulator, reset, with the demo policy pointed at it and a fresh overrides file."""
    sim.state.scenario = {}
    sim.state.reset()
    sim.state.stats.clear()
    monkeypatch.setenv("ROUTEKIT_SIM_URL", sim.url)
    monkeypatch.setenv("ROUTEKIT_OVERRIDES", str(tmp_path / "overrides.json"))
    # Nothing listens here: the local tier is "down" unless a test asks for the real model.
    monkeypatch.setenv("ROUTEKIT_LOCAL_URL", f"http://127.0.0.1:{free_port()}")
    return sim


@pytest.fixture(scope="session")
def local_model():
    """The real Gemma 3 270M server, started once for the session."""
    from toolkit import localmodel

    port = free_port()
    proc = localmodel.start(port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def policy_copy(tmp_path):
    """A copy of the demo policy in tmp (overrides files land beside it)."""
    dst = tmp_path / "policy.yaml"
    shutil.copy(DEMO_POLICY, dst)
    return dst


@pytest.fixture
def log_dir(tmp_path):
    return tmp_path / "routelog"


@pytest.fixture
def spool(tmp_path, monkeypatch):
    """Where records go when the route log cannot take them (``routekit log recover`` replays them)."""
    monkeypatch.setenv("ROUTEKIT_SPOOL_DIR", str(tmp_path / "spool"))
    return tmp_path / "spool"


def wait_for(check, what: str, limit_s: float = 10.0, every: float = 0.01) -> float:
    """Seconds until ``check()`` holds, polled every ``every`` s (a bounded wait: the figure is printed, never
    compared to a target; a loaded machine is slow)."""
    import time

    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > limit_s:
            raise AssertionError(f"{what}: not within {limit_s} s")
        time.sleep(every)
    return time.monotonic() - t0


def read_records(log_dir: Path) -> list[dict]:
    """The complete records of a log's JSONL files: a line another process (the proxy) is still writing, with no
    newline yet, is left for the next read."""
    import json

    out = []
    for f in sorted(Path(log_dir).glob("date=*/*.jsonl")):
        text = f.read_text()
        out += [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()]
    return out


@pytest.fixture(scope="session", autouse=True)
def every_route_log_is_clean(tmp_path_factory):
    """At the end of the session, scan every route log any test wrote: no secret-looking string anywhere,
    no raw prompt or output unless its route opted in (store_prompts)."""
    yield
    from toolkit.policy import PolicyError, load_policy
    from toolkit.routelog import privacy_findings

    base = tmp_path_factory.getbasetemp()
    allowed = set()
    for f in [*base.rglob("*.yaml"), *DATA.glob("*.yaml")]:
        try:
            policy = load_policy(f)
        except (PolicyError, OSError):
            continue  # tests write broken policies on purpose
        allowed |= {(policy.version, intent) for intent, r in policy.routes.items() if r.store_prompts}
    roots = sorted({p.parent for p in base.rglob("date=*") if p.is_dir() and "_rollups" not in p.parts})
    findings = [f for root in roots for f in privacy_findings(root, allowed)]
    assert findings == [], "route logs written by this test session leak:\n" + "\n".join(findings[:20])


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """routekit's wheel, built once per session from a clean copy of this checkout (setuptools leaves build/ in the
    tree it builds, and a stale build/ would slip old files into the next wheel)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    anywhere = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis")
    at_top = {".venv", ".venv-proxy", "demo", "reports", "routelog"}   # what make demo/test write (not toolkit/routelog)

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(anywhere(folder, names)) | (at_top & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, src, symlinks=True, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], check=True,
                   capture_output=True, timeout=600)
    return next(out.glob("routekit-*.whl"))
