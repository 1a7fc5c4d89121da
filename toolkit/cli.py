"""The ``routekit`` command.

Each command group lives in ``toolkit/commands/<name>.py`` with a ``register(subparsers)``
function and an ``ORDER`` number (its place in ``--help``).  Modules are found by
listing the package, so adding a command touches no other file; only the chosen
command's heavy imports (litellm, polars) are paid.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .extras import missing_extra

EPILOG = """examples:
  routekit policy check data/policy.example.yaml     # data/...: your file, else the one routekit ships
  routekit route --intent triage "Is this invoice overdue?"
  routekit notebooks ./nb                            # the notebooks and an example policy, to open in JupyterLab
  routekit disable strong-a --reason "vendor incident #4411" --for 2h
  routekit sim serve --port 8088
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routekit",
        description="Route LLM calls by task intent through a policy table, fall back honestly, see the cost.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [importlib.import_module(f"toolkit.commands.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as e:
        message = missing_extra(e)
        if message is None:
            raise
        print(f"routekit {args.command}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
