"""routekit export litellm-proxy: the policy as a LiteLLM proxy config."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .policy import print_problems
from .common import add_policy_arg

ORDER = 70

EXAMPLES = """examples:
  routekit export litellm-proxy --policy data/policy.example.yaml -o proxy.yaml
  LITELLM_MASTER_KEY=sk-... .venv-proxy/bin/litellm --config proxy.yaml --port 4000   # (make proxy-env)
  curl localhost:4000/v1/chat/completions -H "Authorization: Bearer $LITELLM_MASTER_KEY" \
       -d '{"model": "triage", "messages": [...]}'

One model group per intent (clients send model: "triage"), each fallback candidate a group INTENT@ALIAS, the
route chains as the proxy's fallbacks, SDK retries off, cooldown from the policy's circuit settings, Redis when
the policy's state names one, keys as os.environ/NAME (the master key too). The proxy runs from its own
virtualenv (litellm[proxy] pins polars < 2; routekit needs 2): `make proxy-env`. The routekit callback in the config writes one route
record per proxied request to ROUTEKIT_LOG_DIR (or --log), so `routekit stats` and the dashboards show proxy
traffic. Rules the proxy cannot hold are printed and written at the top of the file. A chain that would let a
local intent reach a vendor is refused (exit 1), as `routekit policy check` says it.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="compile the policy for another engine (the LiteLLM proxy)")
    ps = p.add_subparsers(dest="export_command", metavar="TARGET", required=True)
    x = ps.add_parser("litellm-proxy", help="a LiteLLM proxy config serving the policy's intents",
                      description="Compile the policy into a LiteLLM proxy config and list the rules the proxy "
                                  "cannot hold. Exit 0 written, 1 on an unsafe or broken policy.",
                      epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_arg(x)
    x.add_argument("-o", "--output", metavar="FILE", help="write the config here (default: stdout)")
    x.add_argument("--log", metavar="DIR", help="the route log the callback writes to (default: the proxy's "
                                                "$ROUTEKIT_LOG_DIR)")
    x.set_defaults(func=litellm_proxy)


def litellm_proxy(args: argparse.Namespace) -> int:
    from ..policy import PolicyError, load_policy
    from ..proxy.export import config_text, export_litellm_proxy

    try:
        policy = load_policy(args.policy)
        export = export_litellm_proxy(policy, log_dir=args.log)
    except PolicyError as e:
        print_problems(args.policy, e)
        return 1
    text = config_text(export, policy)
    report = sys.stdout
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}: {len(export.groups)} intents as model groups, "
              f"{len(export.config['model_list'])} deployments")
    else:
        sys.stdout.write(text)
        report = sys.stderr
    print(f"not held by the proxy ({len(export.unheld)}):", file=report)
    for line in export.unheld:
        print(f"  - {line}", file=report)
    return 0
