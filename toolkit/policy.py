"""The policy table: which model serves which intent, and under what rules.

A policy is a YAML file with two required sections::

    models:        # alias -> how to reach it
      strong-a: {model: anthropic/claude-sonnet-4-6, tier: 3, boundary: vendor, region: us,
                 api_key_env: ANTHROPIC_API_KEY}
      local:    {model: openai/gemma-3-270m, api_base: "http://127.0.0.1:8089/v1", tier: 0,
                 boundary: local, price: {input_per_mtok: 0, output_per_mtok: 0}}
      regex-extract: {tool: toolkit.tools:extract_fields, tier: 1}
    routes:        # intent -> ordered candidates and rules
      synthesis: {primary: strong-a, fallbacks: [strong-b], min_tier: 3, on_exhausted: fail}
      private:   {primary: local, fallbacks: [], boundary: local, on_exhausted: fail}
      review:    {primary: strong-b, fallbacks: ["route:synthesis"], min_tier: 2}

A model may declare what it can do where the price snapshot is wrong or silent
(``supports: {tools: false, json_schema: true, vision: false}``, toolkit/capabilities.py);
a route may require capabilities of every candidate (``requires: [tools]``, checked by
``routekit policy check``) and keep a caller's conversation on one model
(``sticky: conversation``, keyed by the ``conversation_id`` the caller passes).

A fallback written ``route:NAME`` expands to that route's whole chain, which is
how cycles can arise (and are rejected).  String values may use ``${VAR}`` or
``${VAR:-default}`` so one file can point at a simulator on any port; a ``${VAR}``
without a default that is not set is an error.  Secrets are never written in the
file, only the *name* of the variable holding them; the values of every variable a
policy names as secret are scrubbed from everything routekit writes (toolkit.redact).

The privacy boundary is proved here first (and again by the transport at call time):
a ``boundary: local`` model needs an explicit ``api_base`` that is local — loopback,
a private or link-local address, a unix socket, or a host listed under
``local_hosts:`` — and no route with ``boundary: local`` may reach another model.
A caller's ``sensitivity`` label asks for the boundary ``sensitivity:`` maps it to (default
``{private: local}``; declare others, e.g. ``{private: local, internal: vendor}``); a label the map
does not declare is refused before any call, so a typo of ``private`` cannot reach a vendor.

Parsing is strict: at most ``MAX_POLICY_BYTES``, YAML aliases may not expand past
``MAX_EXPANDED_NODES``, duplicate keys are refused with both lines, and values are
never coerced (``tier: "2"`` is an error, not 2).

``state:`` says where the policy's operational state lives — the kill-switch overrides,
published circuit openings and the budget ledger — so that every process using the
policy shares one budget whatever its log directory or working directory::

    state: {backend: embedded}                     # default: files beside the policy
    state: {dir: /var/lib/routekit}                # elsewhere (relative to the policy file)
    state: {backend: redis, url_env: ROUTEKIT_REDIS_URL, on_unavailable: fail_closed}
    state: {backend: redis, url_env: ROUTEKIT_REDIS_URL, refresh_s: 0.2}   # how often Routers re-read it

With ``backend: redis`` the kill switch (and its audit history), circuit state and the budget ledger are
shared by every Router naming the same Redis (toolkit/state); when it cannot be reached, Routers go on with
local state and every record says ``state: degraded-local``.

``keys:`` is the inventory of API keys, by environment-variable NAME only (``routekit keys`` checks it: every key
owned, used, not shared across vendors, rotated recently, set)::

    keys:
      OPENAI_API_KEY: {owner: platform-team, purpose: production OpenAI account, rotated: 2026-10-01}

``load_policy`` returns a frozen :class:`Policy` or raises :class:`PolicyError`
listing every problem with its file, line and key.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import redact
from .errors import PolicyError, Problem, RequestError, YamlError
from .redact import ENV_VAR_NAME, looks_like_secret
from .yamlfile import read_yaml

MAX_POLICY_BYTES = 1 << 20        # a policy is a page of YAML; a 50 MB file is a mistake or an attack

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


class Supports(_Strict):
    """What a model can do, where the price snapshot is wrong or silent (None: the snapshot decides)."""

    tools: bool | None = None
    json_schema: bool | None = None
    vision: bool | None = None


Capability = Literal["tools", "json_schema", "vision"]   # toolkit.chat.CAPABILITIES


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
    # Reasoning ("thinking") tokens a provider may bill beyond max_tokens; budget holds cover them.
    # Default: none for models the price snapshot does not mark as reasoning, else the output cap again.
    reasoning_allowance_tokens: int | None = Field(default=None, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)  # extra litellm arguments (never secrets, never endpoints)
    supports: Supports | None = None   # capabilities, overriding the price snapshot's (toolkit/capabilities.py)
    # The policy's top-level local_hosts, copied here at load so the transport can check the boundary at call
    # time with nothing but the spec in hand (not a key of a model block).
    local_hosts: tuple[str, ...] = Field(default=(), exclude=True)

    @model_validator(mode="after")
    def _one_target(self) -> "ModelSpec":
        if (self.model is None) == (self.tool is None):
            raise ValueError("give exactly one of 'model' (a litellm model string) or 'tool' (module:function)")
        if self.tool is not None and ":" not in self.tool:
            raise ValueError(f"tool {self.tool!r} must look like 'package.module:function'")
        if self.api_key_env is not None and not ENV_VAR_NAME.match(self.api_key_env):
            raise ValueError("api_key_env must be the NAME of an environment variable, not a key")
        moved = sorted(ENDPOINT_PARAMS & set(self.params))
        if moved:
            raise ValueError(f"params {moved} would move the model's endpoint: give it as api_base, where the "
                             f"privacy boundary is checked")
        return self

    @property
    def is_tool(self) -> bool:
        return self.tool is not None

    @property
    def endpoint_is_local(self) -> bool:
        return self.is_tool or is_local_endpoint(self.api_base, self.local_hosts)

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


# litellm arguments that would send a request somewhere other than ``api_base``.
ENDPOINT_PARAMS = frozenset({"api_base", "base_url", "azure_endpoint", "aws_bedrock_runtime_endpoint",
                             "endpoint_url", "proxy", "client", "http_client"})


def is_local_endpoint(url: str | None, local_hosts: tuple[str, ...] | list[str] = ()) -> bool:
    """True when ``url`` stays on this machine or its private network: a unix socket, loopback, a private or
    link-local address, or a host the policy lists under ``local_hosts``.  Host names are never resolved
    (DNS can change after the check); ``0.0.0.0`` is not an address to send to."""
    if not url:
        return False
    if url.startswith(("unix:", "http+unix:")):
        return True
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host in local_hosts or host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not ip.is_unspecified and (ip.is_loopback or ip.is_private or ip.is_link_local)


class Verify(_Strict):
    non_empty: bool = True
    regex: str | None = None
    json_schema: dict[str, Any] | None = None
    callable: str | None = None  # "package.module:function", returns bool
    escalate: bool = True        # a failed check moves on to the next candidate (cascade)

    @model_validator(mode="after")
    def _a_schema(self) -> "Verify":
        if self.json_schema is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(self.json_schema).check_schema(self.json_schema)
            except jsonschema.SchemaError as e:
                raise ValueError(f"json_schema is not a valid JSON schema: {e.message}") from None
        return self


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
    # Capabilities every candidate must have (`routekit policy check` names each one that lacks one); a request
    # to the route needs them as well as what it asks for itself.
    requires: tuple[Capability, ...] = ()
    # "conversation": later turns of a caller's conversation_id stay on the model that served it last, unless it
    # fails (the fallback is then flagged in the record).
    sticky: Literal["conversation"] | None = None


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
    max_cooldown_s: float = Field(default=300.0, gt=0)  # cap on any opening, a provider's Retry-After included


class StateSpec(_Strict):
    """Where the policy's state lives: overrides, published circuits, the budget ledger (module docstring)."""

    backend: Literal["embedded", "redis"] = "embedded"
    dir: str | None = None            # embedded state; relative to the policy file (default: beside it)
    url_env: str | None = None        # redis: NAME of the environment variable holding the URL
    on_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"   # ledger unreachable before a call
    lock_timeout_s: float = Field(default=5.0, gt=0)   # a busy ledger this long counts as unavailable
    # redis: how often each Router re-reads the shared kill switch and circuits (a disable is obeyed everywhere
    # within about this long), and how long a state read may take before Redis counts as unreachable
    refresh_s: float = Field(default=0.2, gt=0, le=10)
    connect_timeout_s: float = Field(default=1.0, gt=0, le=60)

    @model_validator(mode="after")
    def _redis_url(self) -> "StateSpec":
        if self.url_env is not None and not ENV_VAR_NAME.match(self.url_env):
            raise ValueError("url_env must be the NAME of an environment variable holding the URL")
        if self.backend == "redis" and self.url_env is None:
            raise ValueError("backend redis needs url_env: the NAME of the environment variable holding the URL")
        return self


class KeySpec(_Strict):
    """One entry of ``keys:``: who owns an API key and when it was last rotated (never its value)."""

    owner: str | None = None
    purpose: str | None = None
    rotated: date | None = None       # YYYY-MM-DD


class _PolicyFile(_Strict):
    version: int = 1
    models: dict[str, ModelSpec]
    routes: dict[str, RouteSpec]
    budgets: tuple[BudgetSpec, ...] = ()
    circuit: CircuitSpec = CircuitSpec()
    sensitivity: dict[str, Boundary] = Field(default_factory=lambda: {"private": "local"})
    baselines: dict[str, Baseline] = Field(default_factory=dict)
    state: StateSpec = StateSpec()
    local_hosts: tuple[str, ...] = ()   # host names a `boundary: local` endpoint may use besides local addresses
    keys: dict[str, KeySpec] = Field(default_factory=dict)   # API keys by environment-variable NAME: owner, rotation
    description: str | None = None

    @model_validator(mode="after")
    def _key_names(self) -> "_PolicyFile":
        bad = sorted(k for k in self.keys if not ENV_VAR_NAME.match(k))
        if bad:
            raise ValueError(f"keys: {bad} must be NAMES of environment variables (the values never go in the file)")
        return self


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
    state: StateSpec = StateSpec()
    local_hosts: tuple[str, ...] = ()
    keys: dict[str, KeySpec] = field(default_factory=dict)
    lines: dict[tuple, int] = field(default_factory=dict, compare=False, repr=False)  # key path -> line in the file

    def problem(self, path: tuple, message: str) -> Problem:
        """A problem at ``path`` (a key path such as ``("routes", "triage", "router")``), located in the file:
        for checks that need more than the file itself (a trained router's model file, say)."""
        at = path
        while at and at not in self.lines:
            at = at[:-1]
        return Problem(self.path, self.lines.get(at), ".".join(str(x) for x in path), message)
    def chain(self, intent: str) -> list[str]:
        """Every candidate alias for ``intent`` in order, ``route:`` references expanded."""
        chain = self._chains.get(intent)
        if chain is None:
            chain = self._chains[intent] = _expand(self.routes, intent, ())
        return list(chain)

    @cached_property
    def _chains(self) -> dict[str, list[str]]:
        return {}   # per intent, filled on first use: the policy is frozen, so its chains never change

    def undeclared(self, sensitivity: str | None) -> str | None:
        """Why a request labelled ``sensitivity`` is refused — a label the ``sensitivity:`` map does not declare
        (a typo of ``private`` must not route as if the request had none) — or None."""
        if sensitivity is None or sensitivity in self.sensitivity:
            return None
        labels = ", ".join(f"{k} ({v})" for k, v in sorted(self.sensitivity.items())) or "no label"
        return (f"unknown sensitivity {sensitivity!r}; the policy {self.path} declares {labels} "
                "(add it under sensitivity:, with local or vendor)")

    def required_boundary(self, route: RouteSpec, sensitivity: str | None) -> Boundary | None:
        """The boundary a request of ``route`` labelled ``sensitivity`` needs; an undeclared label is a
        :class:`RequestError` (see :meth:`undeclared`)."""
        problem = self.undeclared(sensitivity)
        if problem:
            raise RequestError(problem)
        needed = self.sensitivity.get(sensitivity or "")
        if route.boundary == "local" or needed == "local":
            return "local"
        return route.boundary or needed

    @cached_property
    def state_files(self) -> "StateFiles":
        return StateFiles.of(self.path, self.state.dir)

    @property
    def overrides_path(self) -> Path:
        return self.state_files.overrides

    @property
    def circuits_path(self) -> Path:
        """Where running Routers publish circuit openings (beside the overrides file)."""
        return self.state_files.circuits

    @property
    def ledger_path(self) -> Path:
        """The embedded budget ledger: one per policy, whatever log directory a process writes to."""
        return self.state_files.ledger


@dataclass(frozen=True)
class StateFiles:
    """Where a policy's state lives on disk; found from the policy's path alone, so the kill switch works
    on the overrides of a policy file that no longer loads."""

    overrides: Path
    circuits: Path
    ledger: Path
    outbox: Path      # with the Redis backend: writes made while Redis was unreachable, replayed when it answers

    @classmethod
    def of(cls, policy_path: str | os.PathLike, state_dir: str | None = None) -> "StateFiles":
        base = state_base(policy_path, state_dir)
        env = os.environ.get("ROUTEKIT_OVERRIDES")
        overrides = Path(env) if env else base.with_name(base.name + ".overrides.json")
        circuits = overrides.with_name(overrides.name.removesuffix(".json").removesuffix(".overrides")
                                       + ".circuits.json")
        return cls(overrides, circuits, base.with_name(base.name + ".budgets.sqlite"),
                   base.with_name(base.name + ".redis-outbox.jsonl"))


def state_base(policy_path: str | os.PathLike, state_dir: str | None = None) -> Path:
    """Path prefix of a policy's state files (``<base>.overrides.json``, ``<base>.budgets.sqlite``...).

    In order: the policy's ``state.dir`` (relative to the policy file); ``$ROUTEKIT_STATE_DIR``; beside the
    policy file when that directory is writable; else ``$XDG_STATE_HOME/routekit`` (``~/.local/state``).
    Only beside the policy is the name just the policy's stem: in a shared directory it also carries a hash
    of the policy's absolute path, so two projects' ``policy.yaml`` never share a ledger.  Works without
    parsing the policy, so the kill switch finds the overrides of a broken policy file.
    """
    p = Path(policy_path).expanduser().resolve()   # one file, one state, whatever path (or link) names it
    if state_dir:
        return p.parent / Path(state_dir).expanduser() / p.stem
    tag = f"{p.stem}-{hashlib.sha256(str(p).encode()).hexdigest()[:8]}"
    env = os.environ.get("ROUTEKIT_STATE_DIR")
    if env:
        return Path(env).expanduser() / tag
    if os.access(p.parent, os.W_OK):
        return p.parent / p.stem
    xdg = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(xdg) / "routekit" / tag


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


def _substitute_env(value: Any, path: tuple, unset: list[tuple[tuple, str]]) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in every string; a ``${VAR}`` with no default and no value is noted
    in ``unset`` as (where, problem) rather than silently becoming an empty string."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            got = os.environ.get(m.group(1))
            if got is None and m.group(2) is None:
                unset.append((path, f"environment variable {m.group(1)} is not set (give it a value, or a "
                                    f"default: ${{{m.group(1)}:-...}})"))
            return got if got is not None else (m.group(2) or "")
        out = _ENV_REF.sub(sub, value)
        if "${" in value and "${" in out:
            unset.append((path, f"unresolved variable reference in {value!r} (defaults cannot nest)"))
        return out
    if isinstance(value, dict):
        return {k: _substitute_env(v, (*path, k), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, (*path, i), unset) for i, v in enumerate(value)]
    return value


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
        with open(p, "rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)
    except OSError as e:
        raise PolicyError([Problem(name, None, "", f"cannot read policy file: {e.strerror}")]) from None
    try:
        doc = read_yaml(name, raw, max_bytes=MAX_POLICY_BYTES, what="a policy")
    except YamlError as e:
        raise PolicyError([e.problem]) from None
    data, lines, duplicates = doc.data, doc.lines, doc.duplicates

    def at(path: tuple) -> int | None:
        while path and path not in lines:
            path = path[:-1]
        return lines.get(path)

    def key(path: tuple) -> str:
        return ".".join(str(x) for x in path)

    if not isinstance(data, dict):
        raise PolicyError([Problem(name, 1, "", "expected a mapping with 'models' and 'routes' at the top level")])

    problems = [Problem(name, first, key(dpath), f"duplicate key {dpath[-1]!r} (line {first} and line {second}); "
                                                 f"YAML would silently keep the last")
                for dpath, first, second in duplicates]
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
                    if section == "models" and "local_hosts" in body:
                        problems.append(Problem(name, at(("models", alias, "local_hosts")),
                                                key(("models", alias, "local_hosts")),
                                                "local_hosts is a top-level key of the policy"))
    unset: list[tuple[tuple, str]] = []
    data = _substitute_env(data, (), unset)
    problems += [Problem(name, at(upath), key(upath), message) for upath, message in unset]
    try:
        # strict: no coercion ("2" is not a tier); through JSON so that YAML lists still fill tuples
        parsed = _PolicyFile.model_validate_json(json.dumps(data, default=str), strict=True)
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
        models={a: m.model_copy(update={"local_hosts": parsed.local_hosts}) for a, m in parsed.models.items()},
        routes=parsed.routes,
        budgets=parsed.budgets,
        circuit=parsed.circuit,
        sensitivity=parsed.sensitivity,
        version=hashlib.sha256(raw).hexdigest()[:12],
        baselines=parsed.baselines,
        state=parsed.state,
        local_hosts=parsed.local_hosts,
        keys=parsed.keys,
        lines=lines,
    )
    problems += [Problem(name, at(path), key(path), msg) for path, msg in static_checks(policy, check_prices)]
    if problems:
        raise PolicyError(problems)
    redact.remember_env(secret_env_names(policy))
    return policy


def secret_env_names(policy: Policy) -> set[str]:
    """Every environment variable the policy names as holding a secret (keys, webhook URLs, the state URL)."""
    names = {m.api_key_env for m in policy.models.values() if m.api_key_env} | set(policy.keys)
    names |= {b.alert_webhook_env for b in policy.budgets if b.alert_webhook_env}
    if policy.state.url_env:
        names.add(policy.state.url_env)
    return names


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
        if route.on_exhausted == "fail" and not any(models[a].tier >= route.min_tier for a in chain):
            out.append((("routes", intent, "min_tier"),
                        f"no candidate of route {intent!r} reaches min_tier {route.min_tier}: the route can never serve"))
    for alias, m in models.items():
        if m.effective_boundary == "local" and not m.endpoint_is_local:
            out.append((("models", alias),
                        f"model {alias!r} is boundary 'local' but its api_base {m.api_base!r} is not a local "
                        f"endpoint (loopback, a private or link-local address, a unix socket, or a host listed "
                        f"under local_hosts); without one litellm would send private prompts to the vendor's "
                        f"public default"))
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
