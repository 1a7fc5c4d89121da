"""The policy table: which model serves which intent, and under what rules.

A policy is a YAML file with two required sections::

    models:        # alias -> how to reach it
      strong-a: {model: anthropic/claude-sonnet-4-5, tier: 3, boundary: vendor, region: us,
                 api_key_env: ANTHROPIC_API_KEY}
      local:    {model: openai/gemma-3-270m, api_base: "http://127.0.0.1:8089/v1", tier: 0,
                 boundary: local, price: {input_per_mtok: 0, output_per_mtok: 0}}
      regex-extract: {tool: toolkit.tools:extract_fields, tier: 1}
    routes:        # intent -> ordered candidates and rules
      synthesis: {primary: strong-a, fallbacks: [strong-b], min_tier: 3, on_exhausted: fail}
      private:   {primary: local, fallbacks: [], boundary: local, on_exhausted: fail}
      review:    {primary: strong-b, fallbacks: ["route:synthesis"], min_tier: 2}

A fallback written ``route:NAME`` expands to that route's whole chain, which is
how cycles can arise (and are rejected).  String values may use ``${VAR}`` or
``${VAR:-default}`` so one file can point at a simulator on any port; secrets
are never written in the file, only the *name* of the variable holding them.

``load_policy`` returns a frozen :class:`Policy` or raises :class:`PolicyError`
listing every problem with its file, line and key.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .redact import ENV_VAR_NAME, looks_like_secret

Boundary = Literal["local", "vendor"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """A per-model price override, in USD per million tokens (or per hour for self-hosted)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float | None = Field(default=None, ge=0)
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    reasoning_per_mtok: float | None = Field(default=None, ge=0)
    per_hour: float | None = Field(default=None, ge=0)
    note: str | None = None


class ModelSpec(_Strict):
    alias: str = ""
    model: str | None = None   # a litellm model string, "provider/name"
    tool: str | None = None    # or a deterministic function, "package.module:function"
    tier: int = Field(ge=0, le=10)
    boundary: Boundary = "vendor"
    region: str | None = None
    vendor: str | None = None  # defaults to the provider prefix of `model`
    api_base: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    price: Price | None = None
    price_key: str | None = None  # entry of the price snapshot, when it differs from `model`
    params: dict[str, Any] = Field(default_factory=dict)  # extra litellm arguments (never secrets)

    @model_validator(mode="after")
    def _one_target(self) -> "ModelSpec":
        if (self.model is None) == (self.tool is None):
            raise ValueError("give exactly one of 'model' (a litellm model string) or 'tool' (module:function)")
        if self.tool is not None and ":" not in self.tool:
            raise ValueError(f"tool {self.tool!r} must look like 'package.module:function'")
        if self.api_key_env is not None and not ENV_VAR_NAME.match(self.api_key_env):
            raise ValueError("api_key_env must be the NAME of an environment variable, not a key")
        return self

    @property
    def is_tool(self) -> bool:
        return self.tool is not None

    @property
    def effective_boundary(self) -> Boundary:
        # A Python function runs in-process: it is local by definition.
        return "local" if self.is_tool else self.boundary

    @property
    def provider_prefix(self) -> str:
        if self.is_tool:
            return "routekit_tool"
        return self.model.split("/", 1)[0] if self.model and "/" in self.model else "openai"

    @property
    def effective_vendor(self) -> str:
        return self.vendor or self.provider_prefix

    @property
    def target(self) -> str:
        return self.model or f"tool:{self.tool}"


class Verify(_Strict):
    non_empty: bool = True
    regex: str | None = None
    json_schema: dict[str, Any] | None = None
    callable: str | None = None  # "package.module:function", returns bool
    escalate: bool = True        # a failed check moves on to the next candidate (cascade)


class LearnedRouter(_Strict):
    """``router:`` of a route: a trained router (``routekit research train --emit-policy``) picks the route's
    first candidate per prompt; evaluated by toolkit/research/learned.py (see its docstring)."""

    name: str
    version: str
    file: str                        # the model file, relative to the policy file
    models: tuple[str, ...]          # aliases, in the model file's order (pair rule: strong, weak)
    threshold: float | None = None   # pair rule: models[0] when the predicted gain >= threshold
    cost_weight: float | None = None  # cost rule: argmax predicted score - cost_weight * mean cost

    @model_validator(mode="after")
    def _one_rule(self) -> "LearnedRouter":
        if (self.threshold is None) == (self.cost_weight is None):
            raise ValueError("give exactly one of 'threshold' (strong/weak pair) or 'cost_weight'")
        if self.threshold is not None and len(self.models) != 2:
            raise ValueError("a threshold router chooses between exactly two models (strong, weak)")
        return self


class RouteSpec(_Strict):
    intent: str = ""
    primary: str
    fallbacks: tuple[str, ...] = ()
    min_tier: int = Field(default=0, ge=0, le=10)
    on_exhausted: Literal["fail", "degrade"] = "fail"
    boundary: Boundary | None = None
    allowed_vendors: tuple[str, ...] | None = None
    allowed_regions: tuple[str, ...] | None = None
    store_prompts: bool = False          # raw prompt/output in the route log: opt-in only
    verify: Verify | None = None
    max_retry_after_s: float = Field(default=2.0, ge=0)  # wait for a short Retry-After on the last candidate
    max_output_tokens: int | None = Field(default=None, gt=0)
    owner: str | None = None
    shadow: str | None = None
    shadow_rate: float = Field(default=0.0, ge=0, le=1)
    # A stream that breaks after its first token fails with a clear error; true: start the answer over
    # on the next candidate instead (the caller gets a StreamRestart, the result and record say so).
    stream_restart: bool = False
    router: LearnedRouter | None = None  # a trained router picks the first candidate per prompt


class BudgetSpec(_Strict):
    name: str
    scope: dict[Literal["team", "intent", "route", "provider"], str] = Field(default_factory=dict)
    period: Literal["daily", "monthly"] = "monthly"
    limit_usd: float = Field(gt=0)
    alerts: tuple[float, ...] = (0.5, 0.8, 1.0)
    on_limit: Literal["block", "downgrade"] = "block"
    alert_webhook_env: str | None = None  # NAME of an env var holding a webhook URL (URLs carry tokens)

    @model_validator(mode="after")
    def _env_name(self) -> "BudgetSpec":
        if self.alert_webhook_env is not None and not ENV_VAR_NAME.match(self.alert_webhook_env):
            raise ValueError("alert_webhook_env must be the NAME of an environment variable")
        return self


class MeasuredScore(_Strict):
    score: float
    n: int = Field(ge=0)


class Baseline(_Strict):
    """Measured quality of each candidate for one intent (``routekit eval floor`` prints this block).
    A candidate scoring below ``min_score`` is below the route's floor, like a tier below ``min_tier``."""

    min_score: float
    scores: dict[str, MeasuredScore] = Field(default_factory=dict)
    suggested_min_tier: int | None = None


class CircuitSpec(_Strict):
    failures: int = Field(default=3, ge=1)     # consecutive failures that open the circuit
    cooldown_s: float = Field(default=30.0, gt=0)


class _PolicyFile(_Strict):
    version: int = 1
    models: dict[str, ModelSpec]
    routes: dict[str, RouteSpec]
    budgets: tuple[BudgetSpec, ...] = ()
    circuit: CircuitSpec = CircuitSpec()
    sensitivity: dict[str, Boundary] = Field(default_factory=lambda: {"private": "local"})
    baselines: dict[str, Baseline] = Field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy, located as precisely as we can."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class PolicyError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Policy:
    path: str
    models: dict[str, ModelSpec]
    routes: dict[str, RouteSpec]
    budgets: tuple[BudgetSpec, ...]
    circuit: CircuitSpec
    sensitivity: dict[str, Boundary]
    version: str  # sha256 of the file's bytes, first 12 hex digits
    baselines: dict[str, Baseline] = field(default_factory=dict)

    def chain(self, intent: str) -> list[str]:
        """Every candidate alias for ``intent`` in order, ``route:`` references expanded."""
        return _expand(self.routes, intent, ())

    def required_boundary(self, route: RouteSpec, sensitivity: str | None) -> Boundary | None:
        needed = self.sensitivity.get(sensitivity or "")
        if route.boundary == "local" or needed == "local":
            return "local"
        return route.boundary or needed

    @property
    def overrides_path(self) -> Path:
        env = os.environ.get("ROUTEKIT_OVERRIDES")
        if env:
            return Path(env)
        p = Path(self.path)
        return p.with_name(p.stem + ".overrides.json")

    @property
    def circuits_path(self) -> Path:
        """Where running Routers publish circuit openings (beside the overrides file)."""
        o = self.overrides_path
        return o.with_name(o.name.removesuffix(".json").removesuffix(".overrides") + ".circuits.json")


ROUTE_REF = "route:"


def _expand(routes: dict[str, RouteSpec], intent: str, seen: tuple[str, ...]) -> list[str]:
    if intent in seen:
        raise ValueError(" -> ".join((*seen, intent)))
    route = routes[intent]
    out: list[str] = []
    for ref in (route.primary, *route.fallbacks):
        names = _expand(routes, ref[len(ROUTE_REF):], (*seen, intent)) if ref.startswith(ROUTE_REF) else [ref]
        out.extend(n for n in names if n not in out)
    return out


# --- loading -------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute_env(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _substitute_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v) for v in value]
    return value


def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every key path in the YAML document to its 1-based line number."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            out[sub] = key.start_mark.line + 1
            _line_index(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _line_index(value, (*path, i), out)
    return out


def _scalars(data: Any, path: tuple = ()):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _scalars(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _scalars(v, (*path, i))
    else:
        yield path, data


_SECRET_KEYS = re.compile(r"(?i)^(api_key|apikey|key|secret|token|password|access_key|secret_key|aws_secret_access_key|aws_access_key_id)$")


def load_policy(path: str | os.PathLike, *, check_prices: bool = False) -> Policy:
    """Load and validate a policy file; raise :class:`PolicyError` naming every problem."""
    p = Path(path)
    name = str(p)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise PolicyError([Problem(name, None, "", f"cannot read policy file: {e.strerror}")]) from None
    text = raw.decode("utf-8", errors="replace")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise PolicyError([Problem(name, line, "", f"not valid YAML: {getattr(e, 'problem', e)}")]) from None
    lines = _line_index(root) if root is not None else {}

    def at(path: tuple) -> int | None:
        while path and path not in lines:
            path = path[:-1]
        return lines.get(path)

    def key(path: tuple) -> str:
        return ".".join(str(x) for x in path)

    if not isinstance(data, dict):
        raise PolicyError([Problem(name, 1, "", "expected a mapping with 'models' and 'routes' at the top level")])

    problems: list[Problem] = []
    # Secrets first: they must be reported even when the file is otherwise broken.
    for spath, value in _scalars(data):
        if not isinstance(value, str):
            continue
        last = str(spath[-1]) if spath else ""
        if looks_like_secret(value) or (_SECRET_KEYS.match(last) and value and not value.startswith("${")):
            problems.append(Problem(name, at(spath), key(spath),
                                    "looks like a literal secret; give the NAME of an environment variable "
                                    "in 'api_key_env' instead (the value is not repeated here)"))

    for section in ("models", "routes"):
        if isinstance(data.get(section), dict):
            for alias, body in data[section].items():
                if isinstance(body, dict):
                    body.setdefault("alias" if section == "models" else "intent", str(alias))
    try:
        parsed = _PolicyFile.model_validate(_substitute_env(data))
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-after")))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see toolkit/policy.py for the fields)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            problems.append(Problem(name, at(loc), key(loc), msg))
        raise PolicyError(problems) from None

    policy = Policy(
        path=name,
        models=parsed.models,
        routes=parsed.routes,
        budgets=parsed.budgets,
        circuit=parsed.circuit,
        sensitivity=parsed.sensitivity,
        version=hashlib.sha256(raw).hexdigest()[:12],
        baselines=parsed.baselines,
    )
    problems += [Problem(name, at(path), key(path), msg) for path, msg in static_checks(policy, check_prices)]
    if problems:
        raise PolicyError(problems)
    return policy


def static_checks(policy: Policy, check_prices: bool = False) -> list[tuple[tuple, str]]:
    """Problems a valid-looking policy can still have, as (key path, message)."""
    out: list[tuple[tuple, str]] = []
    models, routes = policy.models, policy.routes
    for intent, route in routes.items():
        refs = [("primary",), *((("fallbacks", i),) for i in range(len(route.fallbacks)))]
        for (ref_path, ref) in zip(refs, (route.primary, *route.fallbacks)):
            if ref.startswith(ROUTE_REF):
                if ref[len(ROUTE_REF):] not in routes:
                    out.append((("routes", intent, *ref_path), f"unknown route {ref[len(ROUTE_REF):]!r} in {ref!r}"))
            elif ref not in models:
                out.append((("routes", intent, *ref_path), f"unknown model alias {ref!r} (known: {', '.join(sorted(models))})"))
        if route.shadow is not None and route.shadow not in models:
            out.append((("routes", intent, "shadow"), f"unknown model alias {route.shadow!r}"))
    if out:
        return out  # the chain checks below need every reference to resolve
    for intent, route in routes.items():
        try:
            chain = policy.chain(intent)
        except ValueError as cycle:
            out.append((("routes", intent), f"route references form a cycle: {cycle}"))
            continue
        for alias in chain:
            m = models[alias]
            if route.boundary == "local" and m.effective_boundary != "local":
                out.append((("routes", intent),
                            f"route {intent!r} has boundary 'local' but model {alias!r} ({m.target}) in its chain "
                            f"is outside it (boundary {m.effective_boundary!r})"))
            if route.allowed_vendors is not None and not m.is_tool and m.effective_vendor not in route.allowed_vendors:
                out.append((("routes", intent, "allowed_vendors"),
                            f"route {intent!r} allows vendors {list(route.allowed_vendors)} but model {alias!r} "
                            f"is from {m.effective_vendor!r}"))
            if route.allowed_regions is not None and not m.is_tool and m.region not in route.allowed_regions:
                out.append((("routes", intent, "allowed_regions"),
                            f"route {intent!r} allows regions {list(route.allowed_regions)} but model {alias!r} "
                            f"is in region {m.region!r}"))
        if route.router is not None:  # a trained router's file and aliases (toolkit/research/learned.py)
            from .research.learned import problems as router_problems

            out += [(("routes", intent, "router", *k), msg)
                    for k, msg in router_problems(route.router, policy.path, chain, models)]
        if route.on_exhausted == "fail" and not any(models[a].tier >= route.min_tier for a in chain):
            out.append((("routes", intent, "min_tier"),
                        f"no candidate of route {intent!r} reaches min_tier {route.min_tier}: the route can never serve"))
    for intent, baseline in policy.baselines.items():
        if intent not in routes:
            out.append((("baselines", intent), f"unknown route {intent!r}"))
        for alias in baseline.scores:
            if alias not in models:
                out.append((("baselines", intent, "scores", alias), f"unknown model alias {alias!r}"))
    for i, b in enumerate(policy.budgets):
        for dim, value in b.scope.items():
            if dim in ("intent", "route") and value not in routes:
                out.append((("budgets", i, "scope", dim), f"unknown route {value!r}"))
    if check_prices:
        from .costs import PriceBook  # local import: the price snapshot is large

        book = PriceBook.load()
        for alias, m in models.items():
            if not m.is_tool and m.price is None and book.lookup(m.price_key or m.model) is None:
                out.append((("models", alias),
                            f"model {m.model!r} is not in the price snapshot {book.version}; add a 'price:' override "
                            f"(e.g. price: {{input_per_mtok: 0, output_per_mtok: 0}} for a local model) or 'price_key'"))
    return out
