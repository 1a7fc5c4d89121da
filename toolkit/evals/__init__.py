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

Modules
=======
===============  ================================================================================================
``items``        :class:`PromptItem`, one prompt of a set
``prompts``      :func:`load_prompts` (and :class:`PromptSetError`), :func:`reference_answers`
``scorers``      :class:`Score`, the deterministic scorers, :func:`score` / :func:`ascore`
``judge``        :class:`LLMJudge`
``score_table``  the scores (one scored answer per prompt x model): :class:`ScoreStore`, :func:`summarize_scores`
``baselines``    :func:`run_baseline` (resumable; how in its docstring)
``floor``        :func:`suggest_floor`, :func:`baselines_yaml`
``shadow``       :func:`compare_shadow` (the verdict rule in its docstring), :func:`bootstrap_ci`
===============  ================================================================================================
"""
from __future__ import annotations

from .baselines import BaselineRun, run_baseline
from .floor import FloorSuggestion, baselines_yaml, suggest_floor
from .items import PromptItem
from .judge import LLMJudge
from .prompts import PromptSetError, load_prompts, reference_answers
from .scorers import SCORERS, Judge, Score, ascore, contains, exact, final_number, json_schema_valid, normalize, \
    normalized_exact, numeric, parse_json_answer, regex, score
from .score_table import SCORE_COLUMNS, SCORE_TABLE_FILES, ScoreStore, effective_score, score_schema, \
    scores_frame, summarize_scores, write_tables
from .shadow import ShadowComparison, bootstrap_ci, compare_shadow

__all__ = ["SCORERS", "SCORE_COLUMNS", "SCORE_TABLE_FILES", "BaselineRun", "FloorSuggestion", "Judge",
           "LLMJudge", "PromptItem", "PromptSetError", "Score", "ScoreStore", "ShadowComparison", "ascore",
           "baselines_yaml", "bootstrap_ci", "compare_shadow", "contains", "effective_score", "exact",
           "final_number", "json_schema_valid", "load_prompts", "normalize", "normalized_exact", "numeric",
           "parse_json_answer", "reference_answers", "regex", "run_baseline", "score", "score_schema",
           "scores_frame", "suggest_floor", "summarize_scores", "write_tables"]
