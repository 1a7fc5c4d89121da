"""The fault model every simulated model obeys, whatever its protocol, and the behaviour file that sets it.

:class:`Behaviour` is one model's latency, errors and faults; :class:`SimState` holds the behaviour of every
model (from a behaviour file, changed at run time), the answer key and the request counters.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from ..errors import BadInput, YamlError

Fault = Literal["html", "malformed", "reset", "cut_stream", "stall_stream", "context_window", "content_policy",
                "bad_json"]
FAULTS: tuple[str, ...] = get_args(Fault)


@dataclass(frozen=True)
class Behaviour:
    """How one model behaves, whatever protocol it is asked through (see the package docstring)."""

    latency_ms: float = 5.0          # median added latency
    latency_sigma: float = 0.0       # log-normal spread (0 = fixed)
    error_rate: float = 0.0          # share of requests answered with error_status
    error_status: int = 500          # 429, 500, 503, 529, or a 4xx such as 400/401
    retry_after_s: float | None = None
    down: bool = False               # connection dropped without an answer
    timeout: bool = False            # never answers (the client times out)
    empty: bool = False              # 200 with empty text
    answer: str | None = None        # fixed answer text; default: a deterministic echo
    skill: float | None = None       # share of the answer key's prompts answered right (None: never)
    output_tokens: int | None = None
    cached_tokens: int = 0           # cached input tokens read (inside the prompt count)
    cache_write_tokens: int = 0      # input tokens written to a cache (Anthropic, Bedrock)
    reasoning_tokens: int = 0        # thinking tokens (billed as output; reported where the vendor does)
    input_tokens: int | None = None  # prompt token count to report; default: counted from the prompt
    served_model: str | None = None  # the name the vendor says it served (e.g. a dated snapshot)
    echo_key: bool = False           # error bodies quote the credential the request carried (some vendors do)
    fault: Fault | None = None
    fault_after: int = 1             # text pieces sent before a cut or stalled stream

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; known: {', '.join(FAULTS)}")
        if self.skill is not None and not 0 <= self.skill <= 1:
            raise ValueError(f"skill {self.skill} is not a share between 0 and 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: "Behaviour | None" = None) -> "Behaviour":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown behaviour keys {bad}; known: {sorted(known)}")
        return replace(base or cls(), **d)


class SimState:
    def __init__(self, scenario: dict[str, Any] | None = None, seed: int = 0):
        self.scenario = scenario or {}   # what load_behaviours read: default, models, answers
        self.rng = random.Random(seed)
        self.stats: Counter[tuple[str, str]] = Counter()
        self.usage: dict[tuple[str, str], dict[str, Any]] = {}   # last usage block sent, vendor's field names
        self.bodies: dict[tuple[str, str], dict[str, Any]] = {}  # last request body received, as the client sent it
        self.reset()

    def reset(self) -> None:
        self.default = Behaviour.from_dict(self.scenario.get("default", {}))
        # prompt text -> right answer: a request whose prompt contains the text is answered right by a model
        # with skill s for a fixed share s of such prompts (a hash of model and prompt decides which)
        self.answers: dict[str, str] = {str(k): str(v) for k, v in (self.scenario.get("answers") or {}).items()}
        self.models = {name: Behaviour.from_dict(b, self.default)
                       for name, b in (self.scenario.get("models") or {}).items()}

    def behaviour(self, model: str) -> Behaviour:
        return self.models.get(model, self.default)

    def set(self, model: str, changes: dict[str, Any]) -> Behaviour:
        self.models[model] = Behaviour.from_dict(changes, self.behaviour(model))
        return self.models[model]


def load_behaviours(path: str | Path) -> dict[str, Any]:
    """Read a simulator behaviour file (``default``, ``models``, ``answers``; format in the package docstring);
    :class:`~toolkit.errors.BadInput` names the file, line and key of a problem."""
    from ..yamlfile import read_yaml

    try:
        doc = read_yaml(str(path), Path(path).read_bytes(), max_bytes=1 << 22, what="a behaviour file")
    except YamlError as e:
        raise BadInput(str(e.problem)) from None
    data = doc.data or {}

    def bad(where: tuple, message: str) -> BadInput:
        line = doc.line_of(where)
        return BadInput(f"{path}{f':{line}' if line else ''}: {'.'.join(map(str, where)) or '(top)'}: {message}")

    if not isinstance(data, dict):
        raise bad((), "a behaviour file is a mapping with 'default', 'models' and/or 'answers'")
    stray = sorted(set(data) - {"default", "models", "answers"})
    if stray:
        raise bad((stray[0],), f"unknown behaviour file keys {stray}; known: default, models, answers")
    if not isinstance(data.get("answers") or {}, dict):
        raise bad(("answers",), "expected a mapping of prompt text to its right answer")
    for where, b in [(("default",), data.get("default") or {}), *((("models", n), b) for n, b in
                                                                 (data.get("models") or {}).items())]:
        try:
            Behaviour.from_dict(b)
        except (TypeError, ValueError) as e:
            raise bad(where, str(e)) from None
    return data
