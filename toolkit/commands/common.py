"""What several commands share: the ``--log`` and ``--policy`` arguments (not a command: it has no ``register``)."""
from __future__ import annotations

import argparse
import os


def add_log_arg(p: argparse.ArgumentParser, what: str = "route log directory") -> None:
    p.add_argument("--log", default=os.environ.get("ROUTEKIT_LOG_DIR", "routelog"),
                   help=f"{what} (default: $ROUTEKIT_LOG_DIR or ./routelog)")


def add_policy_arg(p: argparse.ArgumentParser, help: str = "policy YAML file") -> None:
    from ..resources import default_policy, find

    p.add_argument("--policy", default=default_policy(), type=find,
                   help=f"{help} (default: $ROUTEKIT_POLICY or the shipped demo policy)")
