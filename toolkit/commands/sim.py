"""routekit sim serve | routekit sim matrix"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..resources import find
from .common import oserror_line, port, positive

ORDER = 80

SERVE_EXAMPLES = """examples:
  routekit sim serve --port 8088
  routekit sim serve --behaviours sim.yaml           # default: {latency_ms: 20}  models: {gpt-4.1: {down: true}}
  curl -X POST localhost:8088/_sim/models/claude-sonnet-4-6 \
       -d '{"error_rate": 1, "error_status": 429, "retry_after_s": 5}'
  curl -X POST localhost:8088/_sim/models/gemini-3.1-pro-preview -d '{"fault": "cut_stream"}'
  curl localhost:8088/_sim/stats
"""

MATRIX_EXAMPLES = """examples:
  routekit sim matrix                           # print the table
  routekit sim matrix --check                   # exit 1 if any cell differs from its expected kind
  routekit sim matrix --write docs/errors.md    # refresh the table in the docs
"""

# The table sits between these markers in a Markdown file written with --write.
START, END = "<!-- sim-matrix:start -->", "<!-- sim-matrix:end -->"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="the local provider simulator (for tests, demos and drills)")
    ps = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    s = ps.add_parser("serve", help="serve seven vendor protocols on 127.0.0.1 with a configurable fault model",
                      description="A real HTTP server that answers any model name in each vendor's own protocol "
                                  "(OpenAI, Azure OpenAI, OpenRouter, Anthropic, Gemini, Bedrock Converse, "
                                  "Ollama), streamed or not, tools and JSON-schema answers included. Change a "
                                  "model's behaviour at run time with "
                                  "POST /_sim/models/NAME (fields of toolkit.sim.Behaviour: down, timeout, empty, "
                                  "error_rate + error_status + retry_after_s, latency_ms/latency_sigma, "
                                  "fault: html|malformed|reset|cut_stream|stall_stream|context_window|"
                                  "content_policy|bad_json, cached_tokens, cache_write_tokens, reasoning_tokens). "
                                  "GET /_sim/stats counts requests per protocol and model.",
                      epilog=SERVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--port", type=port, default=8088)
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; a test's own network namespace may use 0.0.0.0)")
    s.add_argument("--behaviours", "--scenario", dest="behaviours", metavar="FILE", type=find,
                   help="behaviour file (YAML): 'default', per-model 'models', an 'answers' key "
                        "(--scenario: the old spelling, still accepted)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=serve)

    m = ps.add_parser("matrix", help="every protocol x every fault -> the transport's error kind",
                      description="Drive every simulated fault through every protocol, called and streamed, "
                                  "through litellm's real adapters and routekit's transport, and print the error "
                                  "kind each becomes: each cell names the exception litellm raised; a bold cell "
                                  "became another kind than the row's; † marks a stream that failed after its "
                                  "first token; (N s) is the Retry-After the transport kept. Runs its own "
                                  "simulator.",
                      epilog=MATRIX_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--timeout", type=positive, default=0.5, help="per-call timeout in seconds (default 0.5)")
    m.add_argument("--check", action="store_true", help="exit 1 if any cell is not its expected kind")
    m.add_argument("--write", metavar="FILE", help=f"replace the table between {START} and {END} in FILE")
    m.set_defaults(func=matrix)


def serve(args: argparse.Namespace) -> int:
    from ..sim import load_behaviours, serve

    try:
        behaviours = load_behaviours(args.behaviours) if args.behaviours else None
    except (OSError, ValueError) as e:
        said = oserror_line(e) if isinstance(e, OSError) else e
        print(f"routekit sim: bad behaviour file: {said}", file=sys.stderr)
        return 2
    serve(args.port, behaviours, args.seed, host=args.host,
          on_ready=lambda: print(f"routekit simulator on http://{args.host}:{args.port}", flush=True))
    return 0


def matrix(args: argparse.Namespace) -> int:
    from ..sim import fault_matrix, matrix_table

    cells = fault_matrix(timeout_s=args.timeout, progress=sys.stderr.isatty())
    table = matrix_table(cells)
    print(table)
    bad = [c for c in cells if not c.ok]
    if args.write:
        path = Path(args.write)
        try:
            text = path.read_text()
        except OSError as e:
            print(f"cannot read {path}: {e.strerror}", file=sys.stderr)
            return 2
        block = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        if not block.search(text):
            print(f"{path}: no {START} ... {END} block to replace", file=sys.stderr)
            return 2
        path.write_text(block.sub(lambda _: f"{START}\n{table}\n{END}", text))
        print(f"table written to {path}", file=sys.stderr)
    if bad:
        print(f"{len(bad)} cells differ from the expected kind: " +
              ", ".join(f"{c.protocol}/{c.fault}/{c.mode} -> {c.kind} ({c.requests} requests)" for c in bad),
              file=sys.stderr)
        return 1 if args.check else 0
    return 0
