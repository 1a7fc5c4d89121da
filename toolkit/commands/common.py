"""What several commands share: the ``--log`` and ``--policy`` arguments, and the argparse types of days, periods,
counts, shares, positive numbers and ports (not a command: it has no ``register``)."""
from __future__ import annotations

import argparse
import math
import os
from datetime import date


def add_log_arg(p: argparse.ArgumentParser, what: str = "route log directory") -> None:
    p.add_argument("--log", default=os.environ.get("ROUTEKIT_LOG_DIR", "routelog"),
                   help=f"{what} (default: $ROUTEKIT_LOG_DIR or ./routelog)")


def add_policy_arg(p: argparse.ArgumentParser, help: str = "policy YAML file") -> None:
    from ..resources import default_policy, find

    p.add_argument("--policy", default=default_policy(), type=find,
                   help=f"{help} (default: $ROUTEKIT_POLICY or the shipped demo policy)")


def oserror_line(e: OSError) -> str:
    """What the system refused, in one line: ``path: reason`` (not Python's ``[Errno 2] ...: 'path'``)."""
    return f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))


def day(value: str) -> date:
    """The ``type`` of every YYYY-MM-DD flag: a bad day is a usage error naming the flag, before anything runs."""
    from ..errors import BadInput
    from ..routelog import parse_day

    try:
        return parse_day(value)  # type: ignore[return-value]  # (not None: value is a string)
    except BadInput as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def check_period(since: date | None, until: date | None) -> None:
    """``--since`` .. ``--until``: one that ends before it starts is bad input, not an empty period."""
    from ..routelog import parse_period

    parse_period(since, until, ("--since", "--until"))


def whole(value: str) -> int:
    """The ``type`` of a count flag (days, months, requests, folds...): a whole number, at least 1."""
    if 1 <= (n := _whole(value)):
        return n
    raise argparse.ArgumentTypeError(f"{value!r} is not a whole number at least 1")


def days_ahead(value: str) -> int:
    """The ``type`` of a flag counting days that may be none (a warning given this many days before): 0 or more."""
    if 0 <= (n := _whole(value)):
        return n
    raise argparse.ArgumentTypeError(f"{value!r} is not a whole number (0 or more)")


def port(value: str) -> int:
    """The ``type`` of a ``--port`` flag: 1-65535."""
    if 1 <= (n := _whole(value)) <= 65535:
        return n
    raise argparse.ArgumentTypeError(f"{value!r} is not a port (1-65535)")


def share(value: str) -> float:
    """The ``type`` of a share flag (a cache hit rate...): a number within 0..1."""
    if 0 <= (x := _number(value)) <= 1:
        return x
    raise argparse.ArgumentTypeError(f"{value!r} is not a share within 0..1")


def positive(value: str) -> float:
    """The ``type`` of a flag that is a finite number above 0 (a timeout, a latency bound...)."""
    if 0 < (x := _number(value)) < math.inf:
        return x
    raise argparse.ArgumentTypeError(f"{value!r} is not a number above 0")


def _whole(value: str) -> int:
    return int(value) if value.strip().isdigit() else -1


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan   # fails every range check
