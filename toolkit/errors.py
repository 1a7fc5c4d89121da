"""Every error routekit raises on purpose, in one place.

::

    RoutekitError                        base: catch this to catch them all
    ├── BadInput (ValueError)            a file, a flag or an argument that cannot be used; says which
    │   ├── YamlError                    a YAML file too big, an alias bomb, not YAML (toolkit.yamlfile)
    │   ├── PolicyError                  the policy table: every Problem, each with file, line and field
    │   ├── PromptSetError               a prompt set (toolkit.evals)
    │   ├── ScenarioError                a what-if scenario file (toolkit.estimate)
    │   ├── DrillError                   a fallback-drill file (toolkit.drill)
    │   ├── OutcomeTableError            an outcome table (toolkit.research)
    │   ├── SetupError                   a training setup the table cannot support (toolkit.research)
    │   ├── LearnedRouterError           a trained router's block or model file (toolkit.research)
    │   ├── ReportError                  a report that cannot run as asked (toolkit.reports)
    │   ├── RequestError                 a routed call's arguments: messages, tools, response_format (toolkit.chat)
    │   └── UnknownModel (KeyError)      a model string in no price snapshot (toolkit.costs)
    ├── RoutingError (RuntimeError)      a routed request got no answer; carries its audit ``record``
    │   ├── NoEligibleRoute              every candidate was rejected or failed, each one named
    │   ├── UnknownIntent (KeyError)     the policy routes no such intent
    │   ├── StreamInterrupted            a streamed answer broke after its first token (no silent switch)
    │   ├── BudgetDenied                 a budget refused an attempt (raised by a budget hook)
    │   └── LedgerUnavailable            the budget ledger could not answer (locked, full, unreachable)
    ├── TransportError                   one attempt at one provider failed; ``kind`` is one of KINDS
    ├── Busy (RuntimeError)              another process holds the log (a compaction or a rollup runs)
    ├── RollupError (RuntimeError)       a rollup engine failed for a reason that is not damage in the log
    ├── NotebookFailed (RuntimeError)    a report's notebook raised in a cell; its executed .ipynb is kept
    └── MissingExtra (ImportError)       an optional dependency is not installed; names the extra to install

``routekit`` turns the families into exit codes in one place (toolkit/cli.py): a BadInput, a MissingExtra or a
file the system refuses is 2, a RoutingError or a NotebookFailed 1, anything else 3 — always one line on stderr,
never a traceback.

Transport error kinds (``TransportError.kind``; ``retryable``: another candidate, or the same one later, may
succeed, so the Router moves on): see toolkit/transport.py for what produces each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .redact import scrub
from .usage import Usage

RETRYABLE = frozenset({"rate_limited", "overloaded", "server_error", "timeout", "connection", "empty", "malformed",
                       "tool_error"})
KINDS: tuple[str, ...] = (*sorted(RETRYABLE), "context_window", "content_policy", "auth", "bad_request", "boundary")


class RoutekitError(Exception):
    """Base of every error routekit raises on purpose."""


# --- bad input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class BadInput(RoutekitError, ValueError):
    """A file, a flag or an argument that cannot be used; the message names the file, line or field."""


class PolicyError(BadInput):
    """The policy table is not usable; ``problems`` lists every problem with its file, line and key."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class YamlError(BadInput):
    """A YAML file that cannot be read (too big, an alias bomb, not YAML); ``problem`` locates it."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


class PromptSetError(BadInput):
    """A prompt set that cannot be read; ``problems`` names each file and line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ScenarioError(BadInput):
    """A what-if scenario that cannot be used (the message names the file, scenario and field)."""


class DrillError(BadInput):
    """A fallback-drill file that cannot be used (the message names the file and field)."""


class OutcomeTableError(BadInput):
    """An outcome table (prompt x model -> score, cost) that cannot be used."""


class SetupError(BadInput):
    """A training or evaluation setup that cannot work on the table given (too few prompts, one model...)."""


class LearnedRouterError(BadInput):
    """A trained router (a route's ``router:`` block or its model file) that cannot be used."""


class ReportError(BadInput):
    """A report that cannot run as asked (unknown name or parameter, missing log); the message says which."""


class NotebookFailed(RoutekitError, RuntimeError):
    """One or more notebooks of a report raised in a cell (each named, with the cell); the others still published,
    and each failed one left its executed .ipynb with the traceback."""


class RequestError(BadInput):
    """A routed call's arguments that cannot be sent (messages, tools, response_format...); the message names the
    argument.  Raised before anything is sent or recorded."""


class UnknownModel(BadInput, KeyError):
    """A model string that is neither a policy alias nor in the price snapshot (the message names the closest)."""

    def __str__(self) -> str:
        return self.args[0]


# --- routing ----------------------------------------------------------------------------------------


class RoutingError(RoutekitError, RuntimeError):
    """A routed request that got no answer; ``record`` is its audit record, as written to the route log."""

    record: dict[str, Any]


class NoEligibleRoute(RoutingError):
    """No candidate could serve: every one was rejected or failed (listed in the message)."""

    def __init__(self, intent: str, message: str, attempts: tuple = (), skipped: tuple = (),
                 kind: str | None = None):
        self.intent, self.attempts, self.skipped = intent, attempts, skipped
        if kind is not None:
            self.kind = kind      # the record's error_kind (else the last attempt's, or no_eligible_route)
        super().__init__(message)


class UnknownIntent(RoutingError, KeyError):
    """The policy has no route for the intent asked for."""

    def __str__(self) -> str:
        return self.args[0]


class BudgetDenied(RoutingError):
    """Raised by a budget hook's ``reserve``: ``block`` stops the request (naming the budget);
    otherwise the Router moves on to the next, cheaper, candidate — never below the floor."""

    def __init__(self, budget: str, message: str, block: bool):
        self.budget, self.block = budget, block
        super().__init__(message)


class LedgerUnavailable(RoutingError):
    """A budget ledger that cannot answer (locked, full, read-only, unreachable): raised by a budget hook's
    ``reserve`` or ``settle``; the Router applies the hook's ``on_unavailable`` (see toolkit/budgets.py)."""

    kind = "budget_unavailable"


class StreamInterrupted(RoutingError):
    """A streamed answer broke after its first token.  The text already delivered is in ``partial``;
    the Router does not switch to another model behind the caller's back (see RouteSpec.stream_restart)."""

    kind = "stream_cut"

    def __init__(self, intent: str, alias: str, cause: "TransportError"):
        self.intent, self.alias, self.cause, self.partial = intent, alias, cause, cause.partial
        super().__init__(f"the streamed answer for intent {intent!r} from {alias} broke after "
                         f"{len(cause.partial)} characters ({cause.kind}: {cause.message}); not switched to "
                         f"another model silently — retry the request, or set stream_restart: true on the route")


# --- one provider attempt ---------------------------------------------------------------------------


class TransportError(RoutekitError):
    """One attempt at one provider failed.  ``kind`` is one of KINDS; the message is scrubbed of secrets."""

    def __init__(self, kind: str, message: str, *, provider: str, status: int | None = None,
                 retry_after_s: float | None = None, error_class: str | None = None,
                 latency_ms: float = 0.0, usage: Any = None, partial: str = ""):
        self.kind = kind
        self.retryable = kind in RETRYABLE
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s
        self.error_class = error_class or kind
        self.latency_ms = latency_ms
        self.usage = usage or Usage()
        self.partial = partial       # text a stream had delivered before it failed
        self.message = scrub(message) or kind
        super().__init__(f"{kind}: {self.message}")


# --- the rest ---------------------------------------------------------------------------------------


class Busy(RoutekitError, RuntimeError):
    """Another process holds the log directory (a compaction or a rollup build is running there)."""


class RollupError(RoutekitError, RuntimeError):
    """A rollup engine failed for a reason that is not damage in the log (the message names the days)."""


class MissingExtra(RoutekitError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""
