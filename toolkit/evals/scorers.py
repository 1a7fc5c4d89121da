"""Scorers: each gives an answer a :class:`Score` in [0, 1] (``None`` when it could not score) from the item's
``check`` (the list is in the package docstring)."""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..tools import load_function
from .items import PromptItem


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
    got = load_ref(item.check["ref"])(output, item)
    if isinstance(got, Score):
        return got
    return Score(None if got is None else float(got))


def check_problem(check: dict, expected: Any) -> str | None:
    """What is wrong with a prompt line's ``check`` for its ``expected`` answer (``None``: it can be scored)."""
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
            load_ref(check.get("ref"))
        except (ValueError, ImportError, AttributeError) as e:
            return f"callable: {e}"
    return None


def load_ref(ref: Any) -> Callable:
    """The function a ``callable`` check names as ``"package.module:function"``."""
    if not isinstance(ref, str) or ":" not in ref:
        raise ValueError(f"'ref' must look like 'package.module:function', got {ref!r}")
    return load_function(ref)


class Judge(Protocol):
    """What scoring asks of a judge (:class:`toolkit.evals.judge.LLMJudge` is one)."""

    def score(self, item: PromptItem, output: str) -> Score: ...

    async def ascore(self, item: PromptItem, output: str) -> Score: ...


def score(item: PromptItem, output: str, judge: Judge | None = None) -> Score:
    """Score one answer with the item's check."""
    if item.scorer == "judge":
        return _need_judge(judge).score(item, output)
    return _deterministic(item, output)


async def ascore(item: PromptItem, output: str, judge: Judge | None = None) -> Score:
    if item.scorer == "judge":
        return await _need_judge(judge).ascore(item, output)
    return _deterministic(item, output)


def _deterministic(item: PromptItem, output: str) -> Score:
    fn = _custom if item.scorer == "callable" else SCORERS[item.scorer]
    try:
        return fn(output, item)
    except Exception as e:  # noqa: BLE001 — a scorer bug must not lose the paid answer
        return Score(None, f"scorer {item.scorer} failed: {type(e).__name__}: {e}")


def _need_judge(judge: Judge | None) -> Judge:
    if judge is None:
        raise ValueError("this prompt is scored by an LLM judge: pass judge=LLMJudge(router)")
    return judge
