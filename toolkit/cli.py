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
        if hasattr(module, "register"):   # commands/common.py holds what commands share
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 — a command must end in one clear line, never a traceback
        return report(e, args.command)


def report(e: Exception, command: str) -> int:
    """The error families of toolkit/errors.py and their exit codes, in one place: a missing extra, bad input or
    a file the system refuses is 2, a request that got no answer or a report notebook that failed 1, anything else
    3 — each one line on stderr, scrubbed of secrets.  ``ROUTEKIT_DEBUG=1`` shows the traceback instead."""
    import os

    from .commands.common import oserror_line
    from .errors import BadInput, MissingExtra, NotebookFailed, RoutingError
    from .extras import missing_extra
    from .redact import scrub

    if os.environ.get("ROUTEKIT_DEBUG"):
        raise e
    message, code = f"{type(e).__name__}: {e} (set ROUTEKIT_DEBUG=1 to see where)", 3
    if isinstance(e, ModuleNotFoundError) and missing_extra(e):
        message, code = missing_extra(e), 2
    elif isinstance(e, (BadInput, MissingExtra)):
        message, code = str(e), 2
    elif isinstance(e, (RoutingError, NotebookFailed)):
        message, code = str(e), 1
    elif isinstance(e, OSError):
        message, code = oserror_line(e), 2
    print(scrub(f"routekit {command}: {message}"), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
