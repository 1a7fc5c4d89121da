"""Where a route log holds what it must not: a secret, or a raw prompt of a route that did not opt in."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ..redact import SECRET_PATTERNS
from .record import may_hold_secret

def privacy_findings(root: str | os.PathLike, prompt_routes: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Every place a log holds a secret-looking string, or a raw prompt or output of a route that did
    not opt in (``prompt_routes``: the (policy_version, route_id) pairs whose route sets
    ``store_prompts``).  Reads the files themselves, bad lines and rejected lines included; a Parquet
    part that does not read is searched as raw bytes (compressed pages stay opaque)."""
    import polars as pl

    allowed = set(prompt_routes)
    found: list[str] = []
    for path in sorted(Path(root).glob("date=*/*")):
        if path.name.endswith(".jsonl"):
            lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        elif path.name.endswith(".parquet"):
            try:
                lines = pl.read_parquet(path).write_ndjson().splitlines()
            except Exception:  # noqa: BLE001 — a damaged part: readers skip it, its bytes may still hold a key
                lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        else:
            continue
        # One search over the whole file first: almost every file holds no secret, and a line's match is the
        # whole text's match too (the patterns have no anchors), so the lines are searched only when it has one.
        whole = "\n".join(lines)
        secretive = may_hold_secret(whole) and any(p.search(whole) for p in SECRET_PATTERNS)
        for n, text in enumerate(lines, 1):
            if secretive and may_hold_secret(text) and any(p.search(text) for p in SECRET_PATTERNS):
                found.append(f"{path}:{n}: secret-looking string")
            if '"prompt":null' in text and '"output":null' in text:
                continue
            try:
                rec = json.loads(text)
            except ValueError:
                continue
            if isinstance(rec, dict) and (rec.get("prompt") or rec.get("output")) \
                    and (rec.get("policy_version"), rec.get("route_id")) not in allowed:
                found.append(f"{path}:{n}: raw prompt or output stored for route {rec.get('route_id')!r}, "
                             f"which did not opt in (store_prompts)")
    return found
