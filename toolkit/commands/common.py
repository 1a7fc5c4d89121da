"""What several commands share: the ``--log`` and ``--policy`` arguments, days and periods (not a command: it has
no ``register``)."""
from __future__ import annotations

import argparse
import os
import re
from datetime import date


def add_log_arg(p: argparse.ArgumentParser, what: str = "route log directory") -> None:
    p.add_argument("--log", default=os.environ.get("ROUTEKIT_LOG_DIR", "routelog"),
                   help=f"{what} (default: $ROUTEKIT_LOG_DIR or ./routelog)")


def add_policy_arg(p: argparse.ArgumentParser, help: str = "policy YAML file") -> None:
    from ..resources import default_policy, find

    p.add_argument("--policy", default=default_policy(), type=find,
                   help=f"{help} (default: $ROUTEKIT_POLICY or the shipped demo policy)")


def day(value: str) -> date:
    """The ``type`` of every YYYY-MM-DD flag: a bad day is a usage error naming the flag, before anything runs
    (a day compared as text, as the log's partitions are, would take "2026-02-30" or "20261001" quietly)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{value!r} is not a day (YYYY-MM-DD)")


def check_period(since: date | None, until: date | None) -> None:
    """``--since`` .. ``--until``, both inclusive: one that ends before it starts is bad input, not an empty period."""
    from ..errors import BadInput

    if since and until and until < since:
        raise BadInput(f"--until {until} is before --since {since}")
