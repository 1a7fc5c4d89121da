"""Measure models on your own tasks: prompt sets, scorers, baselines, floors and shadow comparisons.

Prompt sets
===========
JSON Lines, one prompt per line (blank lines are skipped)::

    {"id": "triage-01", "intent": "triage",
     "messages": [{"role": "system", "content": "Answer with one word."}, {"role": "user", "content": "..."}],
     "expected": "billing", "check": "normalized"}
    {"id": "gsm8k-0007", "intent": "math", "prompt": "Question: ...", "expected": 70000, "check": "numeric"}

=============  ========  ===================================================================
field          required  meaning
=============  ========  ===================================================================
id             yes       unique across every file of the run (the resume key)
intent         yes       the task intent (a route of the policy, or any label for a baseline)
messages       one of    chat messages, ``[{"role", "content"}]``
prompt         one of    shorthand for one user message
expected       depends   the reference answer the check compares with
check          no        a scorer name, or ``{"type": NAME, ...options}``; default ``numeric`` when
                         ``expected`` is a number, ``normalized`` when it is text
sensitivity    no        passed to the Router (``private`` keeps the request on local models)
local_only     no        the data owner says this prompt must never leave local models; the
                         baseline and the drill enforce it whatever the policy says
max_tokens     no        cap on output tokens
meta           no        anything else (kept, not used)
=============  ========  ===================================================================

A bad line raises :class:`PromptSetError` naming ``file:line`` and the field, for every bad line.

Scorers (each gives a score in [0, 1]; ``None`` when it could not score)
------------------------------------------------------------------------
``exact``        the answer equals ``expected`` after stripping outer whitespace
``normalized``   equal after lower-casing, dropping punctuation and articles, collapsing whitespace
``contains``     ``expected`` (a string or a list: all of them; ``"any": true``: one of them) occurs
                 in the answer, case-insensitive unless ``"case_sensitive": true``
``regex``        ``pattern`` (or ``expected``) matches somewhere (``"ignore_case": true`` allowed)
``numeric``      the answer's final number (``#### N``, ``\\boxed{N}``, "answer is N", else the last
                 number) is within ``tolerance`` (absolute, default 1e-6) or ``rel`` x |expected|
``json_schema``  the answer (or its fenced ```json block) is JSON valid against ``schema``
``callable``     ``ref: "package.module:function"`` called as ``function(answer, item)`` -> bool/float
``judge``        an LLM judge (:class:`LLMJudge`) routed through the toolkit itself, so its cost is
                 logged like any call; ``rubric`` optional

Baselines
=========
:func:`run_baseline` sends every prompt to every named model alias *alone* (no fallback: a route of
one candidate, so each call still leaves a normal route-log record, team ``eval``), with bounded
concurrency.  Each finished call is appended at once to ``OUT/outcomes.jsonl``; a new run reads that
file first and sends only what is missing, so an interrupted baseline resumes without paying for a
prompt twice.  Ctrl-C stops starting calls and waits for those in flight (they are paid for) to be
recorded; a second Ctrl-C abandons them.  Only a hard kill can lose calls in flight (at most
``concurrency`` of them are then sent again).  Tables: ``outcomes.parquet`` / ``outcomes.csv``
(columns :data:`OUTCOME_COLUMNS`) and ``summary.csv`` (per model x intent).

Shadow comparisons
==================
:func:`compare_shadow` pairs each shadow record with its production record (``shadow_of``) and
measures, per intent and (production, candidate) pair: agreement (same ``output_hash``), or a win
rate when scores are given (an outcome table, or the pairwise judge); a failed shadow call counts as
a disagreement / loss.  Confidence intervals: seeded percentile bootstrap (95%).  The verdict rule:

* fewer than ``min_pairs`` pairs                                       -> **not enough data**
* metric CI upper bound below the bar                                  -> **do not switch**
* CI lower bound below the bar (the interval straddles it)             -> **not enough data**
* CI at or above the bar but a cost unknown (unpriced)                 -> **not enough data**
* CI lower bound at or above the bar: candidate not dearer             -> **switch**;
  dearer but better (win-rate CI lower bound above 0.5)                -> **switch**; otherwise
  (as good, dearer)                                                    -> **do not switch**

The bar is ``min_agreement`` (0.9) for agreement, ``0.5 - margin`` (0.45) for a win rate (ties count
half): "not worse than production by more than the margin".
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import math
import os
import re
import string
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

# --- prompt sets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptItem:
    id: str
    intent: str
    messages: tuple[dict, ...]
    expected: Any = None
    check: dict = field(default_factory=dict)     # {"type": scorer name, ...options}
    sensitivity: str | None = None
    local_only: bool = False
    max_tokens: int | None = None
    source: str = ""                               # "file:line"

    @property
    def scorer(self) -> str:
        return self.check["type"]

    @property
    def question(self) -> str:
        """The last user message (what a judge is shown)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return str(m.get("content") or "")
        return ""


class PromptSetError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_ITEM_KEYS = {"id", "intent", "messages", "prompt", "expected", "check", "sensitivity", "local_only", "max_tokens",
              "meta"}


def load_prompts(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[PromptItem]:
    """Read one or more prompt-set files; raise :class:`PromptSetError` naming every bad line."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    items: list[PromptItem] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            problems.append(f"{path}: cannot read prompt set: {e.strerror}")
            continue
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                item = _parse_item(json.loads(line), where)
            except json.JSONDecodeError as e:
                problems.append(f"{where}: not valid JSON ({e.msg} at column {e.colno})")
                continue
            except ValueError as e:
                problems.append(f"{where}: {e}")
                continue
            if item.id in seen:
                problems.append(f"{where}: id: duplicate id {item.id!r} (first at {seen[item.id]})")
                continue
            seen[item.id] = where
            items.append(item)
    if problems:
        raise PromptSetError(problems)
    return items


def _parse_item(obj: Any, where: str) -> PromptItem:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    unknown = sorted(set(obj) - _ITEM_KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: {', '.join(sorted(_ITEM_KEYS))})")
    for key in ("id", "intent"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise ValueError(f"{key}: required, a non-empty string")
    if ("messages" in obj) == ("prompt" in obj):
        raise ValueError("messages: give exactly one of 'messages' (a list) or 'prompt' (a string)")
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise ValueError("prompt: must be a non-empty string")
        messages = ({"role": "user", "content": obj["prompt"]},)
    else:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in msgs):
            raise ValueError('messages: must be a non-empty list of {"role": str, "content": str}')
        messages = tuple(msgs)
    expected = obj.get("expected")
    check = obj.get("check")
    if check is None:
        if isinstance(expected, bool) or expected is None:
            raise ValueError("check: needed when 'expected' is missing or not text/number")
        check = {"type": "numeric" if isinstance(expected, (int, float)) else "normalized"}
    elif isinstance(check, str):
        check = {"type": check}
    elif not isinstance(check, dict) or not isinstance(check.get("type"), str):
        raise ValueError('check: a scorer name or {"type": NAME, ...options}')
    problem = _check_problem(check, expected)
    if problem:
        raise ValueError(f"check: {problem}")
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
        raise ValueError("max_tokens: must be a positive integer")
    return PromptItem(id=obj["id"], intent=obj["intent"], messages=messages, expected=expected, check=check,
                      sensitivity=obj.get("sensitivity"), local_only=bool(obj.get("local_only", False)),
                      max_tokens=max_tokens, source=where)


def _check_problem(check: dict, expected: Any) -> str | None:
    kind = check["type"]
    if kind not in SCORERS and kind not in ("callable", "judge"):
        return f"unknown scorer {kind!r} (known: {', '.join(sorted([*SCORERS, 'callable', 'judge']))})"
    if kind in ("exact", "normalized") and not isinstance(expected, str):
        return f"{kind} needs 'expected' text"
    if kind == "contains" and not (isinstance(expected, str) or (
            isinstance(expected, list) and expected and all(isinstance(x, str) for x in expected))):
        return "contains needs 'expected' text or a list of texts"
    if kind == "numeric":
        if isinstance(expected, bool) or not isinstance(expected, (int, float)):
            return "numeric needs a number in 'expected'"
    if kind == "regex":
        pattern = check.get("pattern", expected)
        if not isinstance(pattern, str):
            return "regex needs 'pattern' (or 'expected') text"
        try:
            re.compile(pattern)
        except re.error as e:
            return f"bad regex {pattern!r}: {e}"
    if kind == "json_schema":
        import jsonschema

        try:
            jsonschema.validators.validator_for(check.get("schema", {})).check_schema(check.get("schema"))
        except jsonschema.SchemaError as e:
            return f"bad JSON schema: {e.message}"
        except TypeError:
            return "json_schema needs 'schema' (a JSON schema object)"
    if kind == "callable":
        try:
            _load_ref(check.get("ref"))
        except (ValueError, ImportError, AttributeError) as e:
            return f"callable: {e}"
    return None


def _load_ref(ref: Any) -> Callable:
    if not isinstance(ref, str) or ":" not in ref:
        raise ValueError(f"'ref' must look like 'package.module:function', got {ref!r}")
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


# --- scorers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    value: float | None           # in [0, 1]; None: could not score
    detail: str = ""
    cost_usd: float | None = None  # what scoring itself cost (the judge)


def exact(output: str, item: PromptItem) -> Score:
    return Score(float(output.strip() == item.expected.strip()))


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def normalized_exact(output: str, item: PromptItem) -> Score:
    return Score(float(normalize(output) == normalize(item.expected)))


def contains(output: str, item: PromptItem) -> Score:
    wanted = [item.expected] if isinstance(item.expected, str) else list(item.expected)
    hay = output if item.check.get("case_sensitive") else output.lower()
    found = [w for w in wanted if (w if item.check.get("case_sensitive") else w.lower()) in hay]
    ok = bool(found) if item.check.get("any") else len(found) == len(wanted)
    missing = [w for w in wanted if w not in found]
    return Score(float(ok), "" if ok else f"missing {missing}")


def regex(output: str, item: PromptItem) -> Score:
    flags = re.IGNORECASE if item.check.get("ignore_case") else 0
    return Score(float(re.search(item.check.get("pattern", item.expected), output, flags) is not None))


_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_FINAL_NUMBER = (re.compile(r"####\s*\$?\s*(" + _NUMBER + ")"),
                 re.compile(r"\\boxed\{+\s*\$?(" + _NUMBER + ")"),
                 re.compile(r"(?i)answer(?: is)?\s*[:=]?\s*\$?\s*(" + _NUMBER + ")"))


def final_number(text: str) -> float | None:
    """The answer's final number: ``#### N``, ``\\boxed{N}``, "answer is N", else the last number."""
    for pattern in _FINAL_NUMBER:
        found = pattern.findall(text)
        if found:
            return float(found[-1].replace(",", ""))
    found = re.findall(_NUMBER, text)
    return float(found[-1].replace(",", "")) if found else None


def numeric(output: str, item: PromptItem) -> Score:
    got = final_number(output)
    if got is None:
        return Score(0.0, "no number in the answer")
    want = float(item.expected)
    tol = max(float(item.check.get("tolerance", 1e-6)), float(item.check.get("rel", 0.0)) * abs(want))
    ok = abs(got - want) <= tol
    return Score(float(ok), "" if ok else f"got {got:g}, expected {want:g}")


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json_answer(text: str) -> Any:
    """JSON from an answer: the whole text, else its first fenced block, else the outermost {...}."""
    candidates = [text, *(m.group(1) for m in _FENCE.finditer(text))]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except ValueError:
            continue
    raise ValueError("no JSON in the answer")


def json_schema_valid(output: str, item: PromptItem) -> Score:
    import jsonschema

    try:
        jsonschema.validate(parse_json_answer(output), item.check["schema"])
    except ValueError as e:
        return Score(0.0, str(e))
    except jsonschema.ValidationError as e:
        return Score(0.0, f"schema: {e.message}")
    return Score(1.0)


SCORERS: dict[str, Callable[[str, PromptItem], Score]] = {
    "exact": exact, "normalized": normalized_exact, "contains": contains, "regex": regex, "numeric": numeric,
    "json_schema": json_schema_valid,
}


def _custom(output: str, item: PromptItem) -> Score:
    got = _load_ref(item.check["ref"])(output, item)
    if isinstance(got, Score):
        return got
    return Score(None if got is None else float(got))


def score(item: PromptItem, output: str, judge: "LLMJudge | None" = None) -> Score:
    """Score one answer with the item's check."""
    if item.scorer == "judge":
        return _need_judge(judge).score(item, output)
    return _deterministic(item, output)


def reference_answers(items: Iterable[PromptItem]) -> dict[str, str]:
    """Question -> an answer its check accepts, for every item whose ``expected`` is a literal answer
    (exact, normalized, contains, numeric): the simulator's answer key (``SimState.answers``), so simulated
    models with a ``skill`` score what it says on a real prompt set."""
    key = {}
    for item in items:
        if item.scorer in ("exact", "normalized", "contains", "numeric") and item.expected is not None:
            key[item.question] = f"#### {item.expected}" if item.scorer == "numeric" else str(item.expected)
    return key


async def ascore(item: PromptItem, output: str, judge: "LLMJudge | None" = None) -> Score:
    if item.scorer == "judge":
        return await _need_judge(judge).ascore(item, output)
    return _deterministic(item, output)


def _deterministic(item: PromptItem, output: str) -> Score:
    fn = _custom if item.scorer == "callable" else SCORERS[item.scorer]
    try:
        return fn(output, item)
    except Exception as e:  # noqa: BLE001 — a scorer bug must not lose the paid answer
        return Score(None, f"scorer {item.scorer} failed: {type(e).__name__}: {e}")


def _need_judge(judge: "LLMJudge | None") -> "LLMJudge":
    if judge is None:
        raise ValueError("this prompt is scored by an LLM judge: pass judge=LLMJudge(router)")
    return judge


# --- the LLM judge -------------------------------------------------------------------------------

_JUDGE_SYSTEM = ("You grade answers strictly. Compare the answer with the question{ref}. "
                 "Reply with one line 'SCORE: N' where N is an integer from 0 (wrong or useless) to 10 (fully "
                 "correct and useful), then one short sentence of reason.")
_PAIR_SYSTEM = ("You compare two answers to the same request. Reply with one line 'WINNER: A', 'WINNER: B' or "
                "'WINNER: TIE', then one short sentence of reason.")
_SCORE_LINE = re.compile(r"(?i)\bscore\s*[:=]\s*(\d+(?:\.\d+)?)(?:\s*/\s*10)?")
_WINNER_LINE = re.compile(r"(?i)\bwinner\s*[:=]\s*(a|b|tie)\b")


class LLMJudge:
    """An LLM judge that is itself a routed request: ``router.complete(intent, ...)``, team ``eval-judge``,
    so its cost and model land in the route log like any call."""

    def __init__(self, router: Any, intent: str = "review", team: str = "eval-judge"):
        self.router, self.intent, self.team = router, intent, team

    def messages(self, item: PromptItem, output: str) -> list[dict]:
        ref = item.expected if isinstance(item.expected, str) else None
        rubric = item.check.get("rubric")
        user = f"Question:\n{item.question}\n\n" + (f"Reference answer:\n{ref}\n\n" if ref else "") + \
               (f"Rubric:\n{rubric}\n\n" if rubric else "") + f"Answer to grade:\n{output}"
        return [{"role": "system", "content": _JUDGE_SYSTEM.format(ref=" and the reference answer" if ref else "")},
                {"role": "user", "content": user}]

    @staticmethod
    def parse(text: str) -> float | None:
        m = _SCORE_LINE.search(text)
        return None if m is None else min(max(float(m.group(1)) / 10, 0.0), 1.0)

    def score(self, item: PromptItem, output: str) -> Score:
        from .errors import RoutingError

        try:
            result = self.router.complete(self.intent, self.messages(item, output), team=self.team)
        except RoutingError as e:
            return Score(None, f"judge unavailable: {str(e).splitlines()[0]}", _record_cost(e))
        return self._verdict(result)

    async def ascore(self, item: PromptItem, output: str) -> Score:
        from .errors import RoutingError

        try:
            result = await self.router.acomplete(self.intent, self.messages(item, output), team=self.team)
        except RoutingError as e:
            return Score(None, f"judge unavailable: {str(e).splitlines()[0]}", _record_cost(e))
        return self._verdict(result)

    def _verdict(self, result: Any) -> Score:
        value = self.parse(result.text)
        detail = f"judge {result.served_model}" + ("" if value is not None else f": no 'SCORE: N' in {result.text[:60]!r}")
        return Score(value, detail, result.cost_usd)

    def compare(self, question: str, a: str, b: str) -> tuple[str | None, float | None]:
        """Pairwise preference: ("a" | "b" | "tie" | None if unparseable, judge cost)."""
        from .errors import RoutingError

        msgs = [{"role": "system", "content": _PAIR_SYSTEM},
                {"role": "user", "content": f"Request:\n{question}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}"}]
        try:
            result = self.router.complete(self.intent, msgs, team=self.team)
        except RoutingError as e:
            return None, _record_cost(e)
        m = _WINNER_LINE.search(result.text)
        return (m.group(1).lower() if m else None), result.cost_usd


def _record_cost(error: Exception) -> float | None:
    record = getattr(error, "record", None) or {}
    return record.get("cost_usd")


# --- baselines -----------------------------------------------------------------------------------

OUTCOME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("prompt_id", "str"), ("intent", "str"), ("model", "str"), ("score", "float"), ("latency_ms", "float"),
    ("input_tokens", "int"), ("output_tokens", "int"), ("tokens", "int"), ("cost_usd", "float"),
    ("error", "str"), ("detail", "str"), ("judge_cost_usd", "float"), ("target", "str"),
    ("response_model", "str"), ("request_id", "str"), ("prompt_hash", "str"), ("output_hash", "str"),
    ("output", "str"), ("attempts", "int"), ("timestamp", "str"), ("policy_version", "str"),
    ("price_version", "str"),
)


def outcome_schema() -> dict[str, Any]:
    import polars as pl

    kinds = {"str": pl.String, "float": pl.Float64, "int": pl.Int64}
    return {name: kinds[kind] for name, kind in OUTCOME_COLUMNS}


class OutcomeStore:
    """The append-only ``outcomes.jsonl`` of a baseline: one line per finished (prompt, model) call.

    Each line is one ``os.write`` on an ``O_APPEND`` descriptor, written the moment its call ends, so an
    interruption loses nothing already paid for.  A torn last line (a hard kill mid-write) is reported
    and ignored; its call is made again.
    """

    NAME = "outcomes.jsonl"

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / self.NAME
        self.bad_lines: list[str] = []
        self._lock = threading.Lock()

    def load(self) -> dict[tuple[str, str], dict]:
        """Outcomes by (prompt_id, model); a later line for the same key wins (a retried error)."""
        rows: dict[tuple[str, str], dict] = {}
        self.bad_lines = []
        if not self.path.exists():
            return rows
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows[(row["prompt_id"], row["model"])] = row
            except (ValueError, KeyError, TypeError):
                self.bad_lines.append(f"{self.path}:{n}: not an outcome line (torn by a hard kill?) - ignored, "
                                      f"its call will be made again")
        return rows

    def append(self, row: dict) -> None:
        data = (json.dumps(row, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size:
                    with open(self.path, "rb") as f:  # never glue a line onto a torn one
                        f.seek(size - 1)
                        if f.read(1) != b"\n":
                            data = b"\n" + data
                os.write(fd, data)
            finally:
                os.close(fd)


@dataclass
class BaselineRun:
    out_dir: Path
    outcomes: Any            # pl.DataFrame, every (prompt, model) known, this run's and earlier ones
    summary: Any             # pl.DataFrame per model x intent
    called: int              # calls made by this run
    reused: int              # outcomes found from an earlier run (not paid again)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)


def run_baseline(policy: Any, prompts: list[PromptItem], models: list[str], out_dir: str | os.PathLike, *,
                 concurrency: int = 4, log: Any = None, transport: Any = None, judge_intent: str = "review",
                 retry_errors: bool = False, progress: bool = True) -> BaselineRun:
    """Every prompt on every model alias of ``policy``, resumable; see the module docstring."""
    from .policy import Policy, load_policy

    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    unknown = [m for m in models if m not in policy.models]
    if unknown:
        raise ValueError(f"unknown model alias(es) {unknown}; the policy {policy.path} has: "
                         f"{', '.join(sorted(policy.models))}")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    store = OutcomeStore(out_dir)
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
    outcomes = outcomes_frame([r for k, r in rows.items() if k in wanted])
    out = Path(out_dir)
    if not interrupted:
        write_tables(outcomes, out)
    return BaselineRun(out, outcomes, summarize(outcomes), run.called, len(prompts) * len(models) - len(todo),
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
                 judge_intent: str, store: OutcomeStore):
        from .circuit import CircuitBreaker
        from .costs import PriceBook
        from .router import Router
        from .routelog import RouteLogWriter

        if log is None or isinstance(log, (str, Path)):
            log = RouteLogWriter(Path(log)) if log else RouteLogWriter()
        if transport is None:
            from .transport import LiteLLMTransport
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
        from .errors import RoutingError
        from .routelog.record import prompt_hash

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
    from .policy import RouteSpec

    routes = {}
    for intent in intents:
        base = policy.routes.get(intent)
        keep = {} if base is None else {k: getattr(base, k) for k in (
            "boundary", "allowed_vendors", "allowed_regions", "store_prompts", "max_output_tokens", "owner")}
        routes[intent] = RouteSpec(intent=intent, primary=alias, fallbacks=(), min_tier=0, on_exhausted="fail",
                                   max_retry_after_s=0, **keep)
    return replace(policy, routes=routes)


def outcomes_frame(rows: list[dict]) -> Any:
    import polars as pl

    schema = outcome_schema()
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def effective_score() -> Any:
    """A failed call is a wrong answer (0); a call never made (refused by a boundary or a kill switch)
    and an answer that could not be scored are not measurements (null)."""
    import polars as pl

    failed = pl.col("error").is_not_null()
    return (pl.when(failed & (pl.col("attempts") > 0)).then(0.0)
            .when(failed).then(None).otherwise(pl.col("score")))


def summarize(outcomes: Any) -> Any:
    """Per model x intent (and intent ``*`` = all): prompts, scored, mean score (errors count 0), errors,
    p50 latency of answered calls, cost per prompt (mean of priced calls), total cost."""
    import polars as pl

    aggs = [pl.len().alias("prompts"), effective_score().count().alias("scored"),
            effective_score().mean().alias("mean_score"), pl.col("error").count().alias("errors"),
            pl.col("latency_ms").filter(pl.col("error").is_null()).median().alias("p50_latency_ms"),
            pl.col("cost_usd").mean().alias("cost_per_prompt_usd"), pl.col("cost_usd").sum().alias("total_cost_usd")]
    per_intent = outcomes.group_by("model", "intent").agg(aggs)
    overall = outcomes.group_by("model").agg(aggs).with_columns(intent=pl.lit("*"))
    return pl.concat([per_intent, overall.select(per_intent.columns)]).sort("model", "intent")


def write_tables(outcomes: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes.write_parquet(out_dir / "outcomes.parquet")
    outcomes.drop("output").write_csv(out_dir / "outcomes.csv")
    summarize(outcomes).write_csv(out_dir / "summary.csv")


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


# --- quality floor from measured scores ------------------------------------------------------------


@dataclass(frozen=True)
class FloorSuggestion:
    intent: str
    current_min_tier: int
    suggested_min_tier: int | None   # None: no tier of the chain meets min_score
    measured: dict[str, dict]         # alias -> {"score", "n", "tier", "in_chain"}
    min_score: float

    def describe(self) -> str:
        change = ("no tier of the route meets the score" if self.suggested_min_tier is None else
                  "keep" if self.suggested_min_tier == self.current_min_tier else
                  f"change to {self.suggested_min_tier}")
        return f"routes.{self.intent}.min_tier: {self.current_min_tier} -> {change}"


def suggest_floor(outcomes: Any, policy: Any, min_score: float = 0.8) -> list[FloorSuggestion]:
    """For each routed intent, the lowest tier t such that every measured candidate of the route at tier
    >= t scores at least ``min_score`` on average (errors count as 0)."""
    import polars as pl

    from .policy import Policy, load_policy

    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    scored = (outcomes.filter(pl.col("model").is_in(list(policy.models)))
              .with_columns(score=effective_score()).drop_nulls("score")
              .group_by("intent", "model").agg(pl.col("score").mean().alias("score"), pl.len().alias("n")))
    out = []
    for intent in sorted(set(scored["intent"].to_list()) & set(policy.routes)):
        route, chain = policy.routes[intent], policy.chain(intent)
        measured = {r["model"]: {"score": round(r["score"], 4), "n": r["n"], "tier": policy.models[r["model"]].tier,
                                 "in_chain": r["model"] in chain}
                    for r in scored.filter(pl.col("intent") == intent).sort("model").iter_rows(named=True)}
        in_chain = {a: m for a, m in measured.items() if m["in_chain"]}
        suggested = None
        for t in sorted({m["tier"] for m in in_chain.values()}):
            if all(m["score"] >= min_score for m in in_chain.values() if m["tier"] >= t):
                suggested = t
                break
        out.append(FloorSuggestion(intent, route.min_tier, suggested, measured, min_score))
    return out


def baselines_yaml(suggestions: list[FloorSuggestion], source: str = "") -> str:
    """A ``baselines:`` block: measured score per intent and candidate, for a measured-score floor."""
    import yaml

    block = {"baselines": {s.intent: {"min_score": s.min_score, "suggested_min_tier": s.suggested_min_tier,
                                      "scores": {a: {"score": m["score"], "n": m["n"]} for a, m in s.measured.items()}}
                           for s in suggestions}}
    head = f"# measured by `routekit eval baseline`{f' ({source})' if source else ''}\n"
    return head + yaml.safe_dump(block, sort_keys=False)


# --- shadow comparisons ----------------------------------------------------------------------------


def bootstrap_ci(values: Any, *, seed: int = 0, n_boot: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded: the same data gives the same interval)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class ShadowComparison:
    intent: str
    production: str
    candidate: str
    pairs: int
    candidate_failures: int
    metric: str                       # "agreement" or "win_rate"
    value: float
    ci_low: float
    ci_high: float
    agreement: float
    production_cost_usd: float | None  # mean per request
    candidate_cost_usd: float | None
    cost_delta_pct: float | None
    production_p50_ms: float
    candidate_p50_ms: float
    latency_delta_ms: float
    verdict: str
    reason: str
    unjudged: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def compare_shadow(log_dir: str | os.PathLike, *, intent: str | None = None, outcomes: Any = None,
                   judge: LLMJudge | None = None, seed: int = 0, n_boot: int = 2000, min_pairs: int = 30,
                   margin: float = 0.05, min_agreement: float = 0.9) -> list[ShadowComparison]:
    """Candidate vs production from the shadow records of a route log (rule in the module docstring).

    ``outcomes``: a table with ``score`` and either ``request_id`` (one score per logged request) or
    ``prompt_hash`` + ``model`` (a baseline on the same prompts).  ``judge``: pairwise judgement of the
    stored answers (routes with ``store_prompts``)."""
    import polars as pl

    from .routelog import scan_log

    frame = scan_log(log_dir).frame
    keep = ["request_id", "intent", "outcome", "served_alias", "requested_alias", "output_hash", "cost_usd",
            "latency_ms", "prompt_hash", "prompt", "output", "shadow_of"]
    frame = frame.select(keep).collect()
    shadows = frame.filter(pl.col("shadow_of").is_not_null())
    prod = frame.filter(pl.col("shadow_of").is_null())
    pairs = shadows.join(prod, left_on="shadow_of", right_on="request_id", suffix="_prod", how="inner")
    if intent is not None:
        pairs = pairs.filter(pl.col("intent_prod") == intent)
    pairs = pairs.with_columns(candidate=pl.col("requested_alias"), production=pl.col("served_alias_prod"),
                               ok=pl.col("outcome") == "served")
    scores = _pair_scores(pairs, outcomes, judge, seed)
    out = []
    for key, group in sorted(pairs.with_columns(scores).group_by("intent_prod", "production", "candidate"),
                             key=lambda kv: tuple(str(k) for k in kv[0])):
        out.append(_compare_group(key, group, seed, n_boot, min_pairs, margin, min_agreement))
    return out


def _pair_scores(pairs: Any, outcomes: Any, judge: LLMJudge | None, seed: int) -> list:
    """Columns ``win`` (1 candidate better, 0.5 tie, 0 worse; null: unknown) for each pair."""
    import random

    import polars as pl

    if outcomes is None and judge is None:
        return [pl.lit(None, dtype=pl.Float64).alias("win")]
    if judge is not None:
        rng = random.Random(seed)
        wins = []
        for r in pairs.iter_rows(named=True):
            if not r["ok"]:
                wins.append(0.0)
                continue
            if not (r["prompt_prod"] and r["output_prod"] and r["output"]):
                wins.append(None)  # the route does not store prompts: nothing to show the judge
                continue
            question = "\n".join(str(m.get("content", "")) for m in json.loads(r["prompt_prod"]))
            flip = rng.random() < 0.5  # random order: no position bias
            a, b = (r["output"], r["output_prod"]) if flip else (r["output_prod"], r["output"])
            winner, _ = judge.compare(question, a, b)
            cand = "a" if flip else "b"
            wins.append(None if winner is None else 0.5 if winner == "tie" else float(winner == cand))
        return [pl.Series("win", wins, dtype=pl.Float64)]
    table = outcomes if not isinstance(outcomes, (str, Path)) else _read_table(outcomes)
    if "request_id" in table.columns:
        s = table.select("request_id", pl.col("score").cast(pl.Float64))
        joined = (pairs.select("request_id", "shadow_of", "ok")
                  .join(s.rename({"score": "s_cand"}), on="request_id", how="left")
                  .join(s.rename({"request_id": "shadow_of", "score": "s_prod"}), on="shadow_of", how="left"))
    else:
        s = table.select("prompt_hash", "model", pl.col("score").cast(pl.Float64)).unique(["prompt_hash", "model"])
        joined = (pairs.select("prompt_hash", "candidate", "production", "ok")
                  .join(s.rename({"model": "candidate", "score": "s_cand"}), on=["prompt_hash", "candidate"],
                        how="left")
                  .join(s.rename({"model": "production", "score": "s_prod"}), on=["prompt_hash", "production"],
                        how="left"))
    win = (pl.when(~pl.col("ok")).then(0.0)
           .when(pl.col("s_cand").is_null() | pl.col("s_prod").is_null()).then(None)
           .when(pl.col("s_cand") > pl.col("s_prod")).then(1.0)
           .when(pl.col("s_cand") == pl.col("s_prod")).then(0.5).otherwise(0.0))
    return [joined.select(win.alias("win")).to_series()]


def _compare_group(key: tuple, g: Any, seed: int, n_boot: int, min_pairs: int, margin: float,
                   min_agreement: float) -> ShadowComparison:
    import polars as pl

    intent, production, candidate = key
    agree = (g["ok"] & (g["output_hash"] == g["output_hash_prod"]).fill_null(False)).cast(pl.Float64)
    wins = g["win"].drop_nulls()
    use_wins = len(wins) > 0
    values = wins if use_wins else agree
    lo, hi = bootstrap_ci(values.to_numpy(), seed=seed, n_boot=n_boot)
    served = g.filter(pl.col("ok"))
    cost_p = _mean_priced(g["cost_usd_prod"])
    cost_c = _mean_priced(served["cost_usd"])
    delta_pct = None if cost_p is None or cost_c is None or cost_p == 0 else (cost_c - cost_p) / cost_p * 100
    if cost_p == 0 and cost_c is not None:
        delta_pct = 0.0 if cost_c == 0 else math.inf
    p50_p = float(g["latency_ms_prod"].median())
    p50_c = float(served["latency_ms"].median()) if len(served) else math.nan
    bar = (0.5 - margin) if use_wins else min_agreement
    verdict, reason = _verdict(len(values), min_pairs, lo, hi, bar, delta_pct, use_wins)
    return ShadowComparison(
        intent=intent, production=production, candidate=candidate, pairs=len(g),
        candidate_failures=int((~g["ok"]).sum()), metric="win_rate" if use_wins else "agreement",
        value=float(values.mean()) if len(values) else math.nan, ci_low=lo, ci_high=hi,
        agreement=float(agree.mean()), production_cost_usd=cost_p, candidate_cost_usd=cost_c,
        cost_delta_pct=delta_pct, production_p50_ms=p50_p, candidate_p50_ms=p50_c, latency_delta_ms=p50_c - p50_p,
        verdict=verdict, reason=reason, unjudged=len(g) - len(wins) if use_wins else 0)


def _mean_priced(costs: Any) -> float | None:
    return None if costs.null_count() or not len(costs) else float(costs.mean())


def _verdict(n: int, min_pairs: int, lo: float, hi: float, bar: float, cost_delta_pct: float | None,
             win_rate: bool) -> tuple[str, str]:
    what = "win rate" if win_rate else "agreement"
    if n < min_pairs:
        return "not enough data", f"{n} scored pairs < {min_pairs}"
    ci = f"{what} 95% CI [{lo:.2f}, {hi:.2f}]"
    if hi < bar:
        return "do not switch", f"{ci} is below {bar:.2f}"
    if lo < bar:
        return "not enough data", f"{ci} straddles {bar:.2f}"
    if cost_delta_pct is None:
        return "not enough data", f"{ci} is fine but the cost is unknown (an unpriced model)"
    if cost_delta_pct <= 0:
        return "switch", f"{ci} >= {bar:.2f} and cost {cost_delta_pct:+.0f}%"
    if win_rate and lo > 0.5:
        return "switch", f"better: {ci} > 0.50, at cost {cost_delta_pct:+.0f}%"
    return "do not switch", f"as good ({ci}) but cost {cost_delta_pct:+.0f}%"


def _read_table(path: str | os.PathLike) -> Any:
    from .research import read_table

    return read_table(path)
