"""Baselines: every prompt on every model alias alone, resumable.

:func:`run_baseline` sends every prompt to every named model alias *alone* (no fallback: a route of
one candidate, so each call still leaves a normal route-log record, team ``eval``), with bounded
concurrency.  Each finished call is scored and appended at once to ``OUT/scores.jsonl``; a new run reads that
file first and sends only what is missing, so an interrupted baseline resumes without paying for a
prompt twice.  Ctrl-C stops starting calls and waits for those in flight (they are paid for) to be
recorded; a second Ctrl-C abandons them.  Only a hard kill can lose calls in flight (at most
``concurrency`` of them are then sent again).  Tables: ``scores.parquet`` / ``scores.csv``
(columns :data:`~toolkit.evals.scores.SCORE_COLUMNS`) and ``summary.csv`` (per model x intent).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..errors import PromptSetError
from .items import PromptItem, undeclared_labels
from .judge import LLMJudge
from .score_table import ScoreStore, scores_frame, summarize_scores, write_tables
from .scorers import ascore


@dataclass
class BaselineRun:
    out_dir: Path
    scores: Any              # pl.DataFrame, every (prompt, model) scored, this run's and earlier ones
    summary: Any             # pl.DataFrame per model x intent
    called: int              # calls made by this run
    reused: int              # scored answers found from an earlier run (not paid again)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)


def run_baseline(policy: Any, prompts: list[PromptItem], models: list[str], out_dir: str | os.PathLike, *,
                 concurrency: int = 4, log: Any = None, transport: Any = None, judge_intent: str = "review",
                 retry_errors: bool = False, progress: bool = True) -> BaselineRun:
    """Every prompt on every model alias of ``policy``, resumable; see the module docstring."""
    from ..policy import Policy, load_policy

    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    models = list(dict.fromkeys(models))   # a model named twice would be called, and paid, twice per prompt
    unknown = [m for m in models if m not in policy.models]
    if unknown:
        raise ValueError(f"unknown model alias(es) {unknown}; the policy {policy.path} has: "
                         f"{', '.join(sorted(policy.models))}")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    refused = undeclared_labels(prompts, policy)
    if refused:
        raise PromptSetError(refused)
    store = ScoreStore(out_dir)
    done = store.load()
    warnings = list(store.bad_lines)
    todo = [(item, alias) for item in prompts for alias in models
            if (item.id, alias) not in done or (retry_errors and done[(item.id, alias)].get("error"))]
    run = _BaselineCalls(policy, models, prompts, log, transport, judge_intent, store)
    interrupted = False
    if todo:
        try:
            _run_async(run.all(todo, concurrency, progress))
        except KeyboardInterrupt:
            interrupted = True
    rows = store.load()
    wanted = {(i.id, m) for i in prompts for m in models}
    scores = scores_frame([r for k, r in rows.items() if k in wanted])
    out = Path(out_dir)
    if not interrupted:
        write_tables(scores, out)
    return BaselineRun(out, scores, summarize_scores(scores), run.called, len(prompts) * len(models) - len(todo),
                       interrupted, warnings)


def _run_async(coro) -> Any:
    """asyncio.run, also from inside a running loop (a notebook cell): then in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _BaselineCalls:
    """The calls of one baseline run: one single-candidate Router per model alias (no fallback, every
    boundary and kill switch of the policy still applies, one route-log record per call)."""

    def __init__(self, policy: Any, models: list[str], prompts: list[PromptItem], log: Any, transport: Any,
                 judge_intent: str, store: ScoreStore):
        from ..circuit import CircuitBreaker
        from ..costs import PriceBook
        from ..router import Router
        from ..routelog import RouteLogWriter

        if log is None or isinstance(log, (str, Path)):
            log = RouteLogWriter(Path(log)) if log else RouteLogWriter()
        if transport is None:
            from ..transport import LiteLLMTransport
            transport = LiteLLMTransport()
        prices = PriceBook.load()
        intents = sorted({i.intent for i in prompts})
        # A baseline measures every call: a failing model must not be skipped by an open circuit.
        circuit = CircuitBreaker(failures=1 << 30, cooldown_s=1.0)
        self.routers = {alias: Router(_single_model_policy(policy, alias, intents), transport=transport, log=log,
                                      prices=prices, circuit=circuit) for alias in models}
        judged = any(i.scorer == "judge" for i in prompts)
        self.judge = LLMJudge(Router(policy, transport=transport, log=log, prices=prices), judge_intent) \
            if judged else None
        self.policy, self.store, self.called = policy, store, 0

    async def all(self, todo: list[tuple[PromptItem, str]], concurrency: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="baseline", unit="call", disable=not progress)
        jobs = iter(todo)
        stop = asyncio.Event()
        restore = _graceful_sigint(stop, bar)

        async def worker() -> None:
            for item, alias in jobs:
                if stop.is_set():
                    return
                self.store.append(await self.one(item, alias))
                bar.update()

        try:
            await asyncio.gather(*(worker() for _ in range(min(concurrency, len(todo)))))
        finally:
            restore()
            bar.close()
        if stop.is_set():
            raise KeyboardInterrupt

    async def one(self, item: PromptItem, alias: str) -> dict:
        from ..errors import RoutingError
        from ..routelog.record import prompt_hash

        spec = self.policy.models[alias]
        row: dict[str, Any] = {"prompt_id": item.id, "intent": item.intent, "model": alias, "target": spec.target,
                               "prompt_hash": prompt_hash(list(item.messages)), "attempts": 0,
                               "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "policy_version": self.policy.version}
        if item.local_only and spec.effective_boundary != "local":
            return {**row, "error": "boundary", "detail": f"local-only prompt; {alias} is {spec.effective_boundary}"}
        router = self.routers[alias]
        t0 = time.perf_counter()
        try:
            result = await router.acomplete(item.intent, list(item.messages), team="eval",
                                            sensitivity=item.sensitivity, max_tokens=item.max_tokens)
        except RoutingError as e:
            rec = getattr(e, "record", None) or {}
            self.called += bool(rec.get("attempt_count"))
            reason = rec.get("error_kind") or next((s["reason"] for s in rec.get("skipped") or []), "failed")
            return {**row, **_usage_fields(rec), "error": reason, "detail": str(e).splitlines()[-1].strip()[:300],
                    "latency_ms": round((time.perf_counter() - t0) * 1000, 3), "request_id": rec.get("request_id")}
        self.called += 1
        attempt = result.attempts[-1]
        row.update(latency_ms=attempt.latency_ms, input_tokens=attempt.input_tokens,
                   output_tokens=attempt.output_tokens, tokens=attempt.input_tokens + attempt.output_tokens,
                   cost_usd=result.cost_usd, response_model=result.response_model, request_id=result.request_id,
                   output=result.text, output_hash=hashlib.sha256(result.text.encode()).hexdigest(),
                   attempts=len(result.attempts), price_version=result.price_version)
        s = await ascore(item, result.text, self.judge)
        row.update(score=s.value, detail=s.detail or None, judge_cost_usd=s.cost_usd)
        return row


def _usage_fields(rec: dict) -> dict:
    i, o = rec.get("gen_ai.usage.input_tokens") or 0, rec.get("gen_ai.usage.output_tokens") or 0
    return {"input_tokens": i, "output_tokens": o, "tokens": i + o, "cost_usd": rec.get("cost_usd"),
            "attempts": rec.get("attempt_count") or 0, "price_version": rec.get("price_version")}


def _single_model_policy(policy: Any, alias: str, intents: list[str]) -> Any:
    """The policy with, for each intent, a route of one candidate: ``alias``.

    The intent's privacy rules (boundary, vendor and region lists) are kept, so a baseline never sends a
    prompt where production could not; no fallback, no floor, no verification, no shadow, no Retry-After
    wait (a second request for the same prompt)."""
    from ..policy import RouteSpec

    routes = {}
    for intent in intents:
        base = policy.routes.get(intent)
        keep = {} if base is None else {k: getattr(base, k) for k in (
            "boundary", "allowed_vendors", "allowed_regions", "store_prompts", "max_output_tokens", "owner")}
        routes[intent] = RouteSpec(intent=intent, primary=alias, fallbacks=(), min_tier=0, on_exhausted="fail",
                                   max_retry_after_s=0, **keep)
    return replace(policy, routes=routes)


def _graceful_sigint(stop: asyncio.Event, bar: Any) -> Callable[[], None]:
    """First Ctrl-C: start no new call, let the ones in flight finish and be recorded. Second: abandon them."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        if stop.is_set():
            for task in asyncio.all_tasks(loop):
                task.cancel()
            return
        stop.set()
        bar.write("interrupted: waiting for the calls in flight (they are paid for) to be recorded; "
                  "Ctrl-C again to abandon them", file=sys.stderr)

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGINT)
