"""A fault campaign around the happy path: prints cases tried, tracebacks, paid answers lost and keys leaked.

Every case runs against the real simulator through litellm, with the demo policy's routes:

- bad policies (unset variables, non-local local endpoints, duplicate keys, coerced types, an alias bomb, a
  huge file, broken YAML) through `routekit policy check`, `route`, `status`, `disable`, `enable`;
- damaged overrides and circuit files, every intent routed in-process and through the CLI;
- provider faults (down, 429 with a 10-day Retry-After, 500, 529, HTML, broken JSON, cut streams, empty
  answers, 401 echoing the key, absurd and negative usage) on every hosted intent, sync and streamed;
- a read-only log directory, a full disk (root: real tmpfs mounts), a locked budget ledger.

A *traceback* is one in any command's stderr or an exception other than routekit's own errors out of the
library.  A *paid answer lost* is an answer a caller did not get although an attempt succeeded, or a returned
answer whose record is neither in the log nor in the spool.  A *key leaked* is any of the distinctive key values
found in any stdout, stderr, record, spooled record or exception text.

    .venv/bin/python bench/failsafe.py
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

KEYS = {"ROUTEKIT_BENCH_AZURE_KEY": "3f9a1c0b7e6d5a4f8b2c1d0e9f8a7b6c",
        "ROUTEKIT_BENCH_PLAIN_KEY": "Zq8wXv2LmN4pR6tY9uB1cD3eF5gH7jK0"}
FAULTS = {"down": {"down": True}, "429 for 10 days": {"error_rate": 1.0, "error_status": 429, "retry_after_s": 864000},
          "500": {"error_rate": 1.0, "error_status": 500}, "529": {"error_rate": 1.0, "error_status": 529},
          "html": {"fault": "html"}, "broken json": {"fault": "malformed"}, "cut stream": {"fault": "cut_stream"},
          "empty": {"empty": True}, "401 echoing the key": {"error_rate": 1.0, "error_status": 401, "echo_key": True},
          "usage 1e19": {"output_tokens": 10**19}, "negative usage": {"output_tokens": -7}}
OVERRIDES = {"empty": b"", "truncated": b'{"disabled": [{"target": "fast-openai", "reason"',
             "a list": b"[1, 2]", "wrong types": b'{"disabled": [{"target": 1, "reason": 2, "by": 3, "since": "x"}]}',
             "not utf-8": b"\xff\xfe\x00"}


class Tally:
    def __init__(self) -> None:
        self.cases = self.tracebacks = self.lost = self.leaked = 0
        self.notes: list[str] = []

    def text(self, where: str, *texts: str) -> None:
        blob = "\n".join(t for t in texts if t)
        if "Traceback (most recent call last)" in blob:
            self.tracebacks += 1
            self.notes.append(f"traceback: {where}")
        if any(k in blob for k in KEYS.values()):
            self.leaked += 1
            self.notes.append(f"key leaked: {where}")


def cli(tally: Tally, where: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    tally.cases += 1
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, cwd=ROOT, timeout=120)
    tally.text(where, r.stdout, r.stderr)
    return r


def bad_policies(tally: Tally, tmp: Path) -> None:
    good = (ROOT / "data" / "policy.demo.yaml").read_text()
    variants = {
        "unset local url": good.replace("${ROUTEKIT_LOCAL_URL:-http://127.0.0.1:8089}", "${ROUTEKIT_BENCH_UNSET}"),
        "public local url": good.replace("${ROUTEKIT_LOCAL_URL:-http://127.0.0.1:8089}", "https://api.openai.com"),
        "duplicate min_tier": good.replace("min_tier: 3,", "min_tier: 3, min_tier: 0,", 1),
        "tier as text": good.replace("tier: 2,", 'tier: "2",', 1),
        "tier as bool": good.replace("tier: 1,", "tier: true,", 1),
        "broken yaml": good + "\nroutes: [oops: {\n",
        "alias bomb": "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 9)}]\n" for i in range(1, 9)) + "models: {}\nroutes: {}\n",
        "too big": "models: {}\nroutes: {}\n#" + "x" * (2 << 20),
        "not a mapping": "- just\n- a list\n",
        "empty": "",
    }
    for name, text in variants.items():
        p = tmp / f"bad-{name.replace(' ', '-')}.yaml"
        p.write_text(text)
        for args in (("policy", "check", str(p)), ("route", "--policy", str(p), "--log", str(tmp / "log"),
                                                   "--intent", "private", "payroll"),
                     ("status", "--policy", str(p)), ("disable", "fast-openai", "--reason", "x", "--policy", str(p)),
                     ("enable", "fast-openai", "--policy", str(p))):
            r = cli(tally, f"{name}: {args[0]}", *args)
            if args[0] in ("policy", "route") and r.returncode == 0:
                tally.notes.append(f"accepted a bad policy: {name}: {args[0]}")


def routed(tally: Tally, router, intent: str, *, stream: bool, where: str, logs: list[Path]) -> None:
    from toolkit.errors import RoutingError

    tally.cases += 1
    try:
        if stream:
            s = router.stream(intent, f"bench {where}", team="growth")
            for _ in s:
                pass
            result = s.result
        else:
            result = router.complete(intent, f"bench {where}", team="growth")
    except RoutingError as e:
        tally.text(where, str(e), json.dumps(getattr(e, "record", None), default=str))
        if any(a["outcome"] == "ok" for a in (getattr(e, "record", None) or {}).get("attempts", [])):
            tally.lost += 1
            tally.notes.append(f"paid answer not returned: {where}")
        return
    except Exception as e:  # noqa: BLE001 — exactly what the campaign counts
        tally.tracebacks += 1
        tally.notes.append(f"raw {type(e).__name__} out of the Router: {where}: {e}")
        return
    tally.text(where, json.dumps(result.to_dict(), default=str))
    found = any(result.request_id in f.read_text() for d in logs if d.exists() for f in d.rglob("*.jsonl"))
    if not found:
        tally.lost += 1
        tally.notes.append(f"answer without a record: {where}")


def faults(tally: Tally, sim, tmp: Path, policy: Path, logs: list[Path]) -> None:
    from toolkit.router import Router

    intents = ["triage", "extraction", "synthesis", "code", "review", "drafts", "azure-keyed", "plain-keyed"]
    for name, behaviour in FAULTS.items():
        for stream in (False, True):
            sim.state.scenario = {"default": behaviour}
            sim.state.reset()
            router = Router(policy, log=logs[0])
            for intent in intents:
                routed(tally, router, intent, stream=stream, where=f"{name} {'stream' if stream else 'sync'} {intent}",
                       logs=logs)
            router.drain()
    sim.state.scenario = {}
    sim.state.reset()
    for name, data in OVERRIDES.items():
        Path(os.environ["ROUTEKIT_OVERRIDES"]).write_bytes(data)
        router = Router(policy, log=logs[0])
        for intent in intents:
            routed(tally, router, intent, stream=False, where=f"overrides {name}: {intent}", logs=logs)
        for args in (("status", "--policy", str(policy)),
                     ("route", "--policy", str(policy), "--log", str(logs[0]), "--intent", "triage", "hi"),
                     ("disable", "fast-openai", "--reason", "bench", "--policy", str(policy)),
                     ("enable", "fast-openai", "--policy", str(policy))):
            cli(tally, f"overrides {name}: {args[0]}", *args)
    Path(os.environ["ROUTEKIT_OVERRIDES"]).unlink(missing_ok=True)


def disks(tally: Tally, tmp: Path, policy: Path, logs: list[Path]) -> None:
    from toolkit.router import Router

    if os.geteuid() != 0:
        tally.notes.append("disk cases skipped: tmpfs mounts need root")
        return
    ro, small = tmp / "ro", tmp / "small"
    for d in (ro, small):
        d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(ro)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        router = Router(policy, log=ro / "log")
        for intent in ("triage", "code", "synthesis"):
            routed(tally, router, intent, stream=False, where=f"read-only log: {intent}", logs=logs)
        router = Router(policy, log=small / "log")
        router.complete("triage", "warm up")
        with open(small / "ballast", "wb") as f:
            st = os.statvfs(small)
            f.write(b"\0" * (st.f_bavail * st.f_frsize))
        for i in range(10):
            routed(tally, router, "triage", stream=i % 2 == 1, where=f"full disk #{i}", logs=[*logs, small / "log"])
        torn = [line for f in (small / "log").rglob("*.jsonl") for line in f.read_text().splitlines()
                if line and not line.endswith("}")]
        if torn:
            tally.lost += len(torn)
            tally.notes.append(f"torn lines on a full disk: {len(torn)}")
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
        subprocess.run(["umount", "-l", str(small)], check=False)


def main() -> int:
    from toolkit.sim import SimServer

    tally = Tally()
    tmp = Path(tempfile.mkdtemp(prefix="routekit-failsafe-"))
    os.environ.update(KEYS, ROUTEKIT_SPOOL_DIR=str(tmp / "spool"), ROUTEKIT_STATE_DIR=str(tmp / "state"),
                      ROUTEKIT_OVERRIDES=str(tmp / "overrides.json"))
    with SimServer() as sim:
        os.environ["ROUTEKIT_SIM_URL"] = sim.url
        os.environ["ROUTEKIT_LOCAL_URL"] = "http://127.0.0.1:9"   # the local tier is down
        import yaml

        policy = tmp / "policy.yaml"
        data = yaml.safe_load((ROOT / "data" / "policy.demo.yaml").read_text())   # plus two keyed models:
        data["models"]["azure-keyed"] = {"model": "azure/gpt-4.1-mini", "tier": 2, "api_base": sim.url,
                                         "api_version": "2024-10-21", "api_key_env": "ROUTEKIT_BENCH_AZURE_KEY"}
        data["models"]["plain-keyed"] = {"model": "openai/gpt-4o-mini", "tier": 1, "api_base": f"{sim.url}/v1",
                                         "api_key_env": "ROUTEKIT_BENCH_PLAIN_KEY"}
        data["routes"]["azure-keyed"] = {"primary": "azure-keyed"}
        data["routes"]["plain-keyed"] = {"primary": "plain-keyed"}
        policy.write_text(yaml.safe_dump(data, sort_keys=False))
        logs = [tmp / "log", tmp / "spool"]
        bad_policies(tally, tmp)
        faults(tally, sim, tmp, policy, logs)
        disks(tally, tmp, policy, logs)
        for d in logs:
            for f in d.rglob("*.jsonl") if d.exists() else ():
                tally.text(f"written {f.name}", f.read_text())
    print(f"cases tried        {tally.cases}")
    print(f"tracebacks         {tally.tracebacks}")
    print(f"paid answers lost  {tally.lost}")
    print(f"keys leaked        {tally.leaked}")
    for n in tally.notes[:30]:
        print(f"  {n}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not (tally.tracebacks or tally.lost or tally.leaked) else 1


if __name__ == "__main__":
    sys.exit(main())
