"""The LLM judge: a scorer (and a pairwise comparer) that is itself a routed request."""
from __future__ import annotations

import re
from typing import Any

from .items import PromptItem
from .scorers import Score

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
        from ..errors import RoutingError

        try:
            result = self.router.complete(self.intent, self.messages(item, output), team=self.team)
        except RoutingError as e:
            return Score(None, f"judge unavailable: {str(e).splitlines()[0]}", _record_cost(e))
        return self._verdict(result)

    async def ascore(self, item: PromptItem, output: str) -> Score:
        from ..errors import RoutingError

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
        from ..errors import RoutingError

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
