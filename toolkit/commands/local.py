"""routekit local serve: the real local model."""
from __future__ import annotations

import argparse

from .common import port

ORDER = 85


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("local", help="the real local model (Gemma 3 270M via llama-cpp-python)")
    ps = p.add_subparsers(dest="local_command", metavar="ACTION", required=True)
    s = ps.add_parser("serve", help="serve the local model on 127.0.0.1 (foreground)")
    s.add_argument("--port", type=port, default=8089)
    s.set_defaults(func=serve)
    w = ps.add_parser("path", help="assemble the GGUF weights (once) and print their path")
    w.set_defaults(func=path)


def serve(args: argparse.Namespace) -> int:
    from ..localmodel import start

    proc = start(args.port)
    print(f"local model on http://127.0.0.1:{args.port}/v1 (pid {proc.pid})", flush=True)
    return proc.wait()


def path(args: argparse.Namespace) -> int:
    from ..localmodel import model_path

    print(model_path())
    return 0
