"""One "host" of tests/test_scale_out.py: a Router in its own process (inside a network namespace when the test
could make them), driven by JSON commands on stdin, one JSON answer per line on stdout.

Environment: ROUTEKIT_POLICY (the policy), ROUTEKIT_LOG_DIR (this host's route log), ROUTEKIT_SIM_URL and the
policy's Redis URL variable (as seen from this host), ROUTEKIT_STATE_DIR (this host's own state files).

Commands: {"cmd": "one", "intent", "team"} -> one request's summary; {"cmd": "start", "intent", "team",
"threads", "until_blocked"} -> requests in a loop in background threads; {"cmd": "stop"} -> every summary since
start; {"cmd": "sim", "model", "behaviour"} -> change the simulator; {"cmd": "sim_stats"}; {"cmd": "budget"} ->
the ledger's status; {"cmd": "state"} -> the state's mode, the disabled targets and open circuits this host reads
now; {"cmd": "exit"}.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from dataclasses import asdict

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def summary(record: dict, t0: float, t1: float) -> dict:
    return {"request_id": record["request_id"], "outcome": record["outcome"], "served": record["served_alias"],
            "skipped": [[s["alias"], s["reason"]] for s in record["skipped"]], "state": record["state"],
            "cost": record["cost_usd"], "t0": t0, "t1": t1}


def main() -> None:
    from toolkit.errors import RoutingError
    from toolkit.router import Router

    router = Router(os.environ["ROUTEKIT_POLICY"], log=os.environ["ROUTEKIT_LOG_DIR"])
    sim = os.environ["ROUTEKIT_SIM_URL"]
    results: list[dict] = []
    lock = threading.Lock()
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def one(intent: str, team: str) -> dict:
        t0 = time.time()
        try:
            record = router.complete(intent, f"request at {t0}", team=team).record
        except RoutingError as e:
            record = e.record
        return summary(record, t0, time.time())

    def loop(intent: str, team: str, until_blocked: bool) -> None:
        while not stop.is_set():
            s = one(intent, team)
            with lock:
                results.append(s)
            if until_blocked and s["outcome"] == "blocked":
                return

    def reply(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "state": router.state.mode})
    for line in sys.stdin:
        cmd = json.loads(line)
        what = cmd["cmd"]
        if what == "one":
            reply(one(cmd["intent"], cmd.get("team", "ops")))
        elif what == "start":
            stop.clear()
            results.clear()
            threads[:] = [threading.Thread(target=loop, args=(cmd["intent"], cmd.get("team", "ops"),
                                                              cmd.get("until_blocked", False)))
                          for _ in range(cmd["threads"])]
            for t in threads:
                t.start()
            reply({"started": len(threads)})
        elif what == "stop":
            if not cmd.get("wait"):
                stop.set()
            for t in threads:
                t.join()
            with lock:
                reply({"results": list(results)})
        elif what == "sim":
            req = urllib.request.Request(f"{sim}/_sim/models/{cmd['model']}", data=json.dumps(cmd["behaviour"]).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            reply(json.loads(urllib.request.urlopen(req, timeout=5).read()))
        elif what == "sim_stats":
            try:
                reply(json.loads(urllib.request.urlopen(f"{sim}/_sim/stats", timeout=5).read()))
            except OSError as e:   # not listening yet
                reply({"error": str(e)})
        elif what == "budget":
            from toolkit.budgets import BudgetLedger

            ledger = BudgetLedger.from_policy(router.policy, alerts=())
            reply({"budgets": [asdict(s) for s in ledger.status()]})
        elif what == "state":   # what this host's next request would read (no request is sent)
            state = router.state
            state.overrides.refresh()
            reply({"mode": state.mode, "disabled": sorted(state.overrides.active()),
                   "open": sorted(a for a in router.policy.models if state.circuit.is_open(a))})
        elif what == "exit":
            reply({"bye": True})
            return


if __name__ == "__main__":
    main()
