"""routekit notebooks DIR: copy the dashboard and research notebooks (and an example policy) into a project."""
from __future__ import annotations

import argparse
import sys

ORDER = 65

EXAMPLES = """examples:
  routekit notebooks ./nb                 # then: jupyter lab ./nb
  routekit notebooks ./nb --force         # replace copies made earlier (your edits in them are lost)

The notebooks read the route log named by their log_dir parameter, else $ROUTEKIT_LOG_DIR, else the log
`routekit demo` writes (../demo/routelog), ../routelog or ./routelog; the policy from policy_path, else
$ROUTEKIT_POLICY, else the shipped demo policy. Needs the notebooks extra: pip install 'routekit[notebooks]'.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notebooks", help="copy the notebooks (and an example policy) into a directory of yours",
                       description="Copy the spend, latency, quality, what-if and routing-research notebooks and "
                                   "the example policy into DIR (created if missing), ready to open in JupyterLab. "
                                   "Exit 1, writing nothing, when one of the files is already there.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", metavar="DIR", help="destination directory")
    p.add_argument("--force", action="store_true", help="overwrite files of the same name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..resources import ExportConflict, export

    try:
        written = export(args.dir, force=args.force)
    except ExportConflict as e:
        print(f"routekit notebooks: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"routekit notebooks: {args.dir}: {e.strerror or e}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"next: jupyter lab {args.dir}   (routekit log synth --log routelog writes a log to look at)")
    return 0
