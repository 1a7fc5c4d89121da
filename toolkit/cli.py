"""The ``routekit`` command.

Each command group lives in ``toolkit/commands/<name>.py`` with a ``register``
function; only the chosen command's heavy imports (litellm, polars) are paid.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Order here is the order in --help.
COMMANDS = ("route", "policy", "switch", "sim", "local", "demo")

EPILOG = """examples:
  routekit policy check data/policy.demo.yaml
  routekit route --policy data/policy.demo.yaml --intent triage "Is this invoice overdue?"
  routekit disable strong-a --reason "vendor incident #4411" --for 2h
  routekit sim serve --port 8088
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routekit",
        description="Route LLM calls by task intent through a policy table, fall back honestly, see the cost.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"toolkit.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
