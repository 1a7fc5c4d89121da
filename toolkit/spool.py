"""The spool: where a route record goes when the route log cannot take it, until ``routekit log recover``.

A provider that has answered has been paid: its answer goes back to the caller and its record must not be lost
because the log directory is read-only, full or gone.  The Router then writes the record here instead (with a
``spooled`` warning in it) and returns the answer.  The spool is itself a small route log — the same writer,
the same one-append-per-record, no-torn-line guarantees — at ``$ROUTEKIT_SPOOL_DIR``, else
``$XDG_STATE_HOME/routekit/spool`` (``~/.local/state/routekit/spool``): a place on another disk than the log
is the point, so set it where that holds.

``recover(log_dir)`` moves every spooled record into a log: each spool day file is first sealed (renamed, so a
Router still spooling starts a new file and nothing it writes is lost), its records are appended to the log
unless a record with the same ``request_id`` is already there (so a recovery interrupted half-way can be run
again), and only then is the sealed file deleted.  Lines that are not records stay in the spool, reported.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .result import WARNING_SEPARATOR
from .routelog import RouteLogWriter, scan_log, seal

_log = logging.getLogger("routekit.router")


def spool_dir() -> Path:
    env = os.environ.get("ROUTEKIT_SPOOL_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(xdg) / "routekit" / "spool"


_writers: dict[Path, RouteLogWriter] = {}


def _writer() -> RouteLogWriter:
    where = spool_dir()
    w = _writers.get(where)
    if w is None:
        w = _writers[where] = RouteLogWriter(where, durable=True)  # rare and precious: flush each one
    return w


def writable() -> str | None:
    """None when the spool can take records, else why not."""
    return _writer().writable()


def write(record: dict[str, Any]) -> None:
    _writer().write(record)


def keep(log: RouteLogWriter, record: dict[str, Any]) -> None:
    """Append a record to ``log``; if the log refuses it, spool it with a warning saying so (a paid answer's
    record is never lost: the Router and the proxy callback both keep records this way)."""
    try:
        log.write(record)
        return
    except (OSError, ValueError) as e:
        why = f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"
    record["warnings"] = WARNING_SEPARATOR.join(
        x for x in (record["warnings"], f"spooled: the route log {log.root} could not take this record "
                                        f"({why}); routekit log recover replays it") if x)
    try:
        write(record)
    except (OSError, ValueError) as e:
        _log.error("routekit: a route record could not be written (log: %s; spool: %s); here it is: %s", why, e,
                   json.dumps(record, default=str))


@dataclass
class Recovery:
    records: int = 0              # appended to the log
    duplicates: int = 0           # already in the log (an earlier recovery got that far)
    bad_lines: list[str] = field(default_factory=list)   # "file:line" left in the spool


def recover(log_dir: str | os.PathLike, spool: str | os.PathLike | None = None) -> Recovery:
    """Move every spooled record into the route log at ``log_dir`` (see the module docstring)."""
    root = Path(spool) if spool is not None else spool_dir()
    out = Recovery()
    writer = RouteLogWriter(Path(log_dir))
    for day_dir in sorted(p for p in root.glob("date=*") if p.is_dir()):
        day = day_dir.name[len("date="):]
        seal(day_dir)   # Routers spooling right now start a new file; this one is ours alone
        sealed = sorted(day_dir.glob("sealed-*.jsonl"))
        if not sealed:
            continue
        have = set(scan_log(log_dir, start=day, end=day).frame.select("request_id").collect()["request_id"]) \
            if Path(log_dir).is_dir() else set()
        for path in sealed:
            lines, keep = [], []
            for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
                if not raw.strip():
                    continue
                try:
                    rid = json.loads(raw)["request_id"]
                except (ValueError, KeyError, TypeError):
                    keep.append(raw)
                    out.bad_lines.append(f"{path}:{n}")
                    continue
                if rid in have:
                    out.duplicates += 1
                    continue
                have.add(rid)
                lines.append(raw)
            if lines:
                writer.write_lines(day, lines)
                out.records += len(lines)
            if keep:   # not records: left where they are for a person to read, under a name that says so
                path.with_name(f"unreadable-{path.name.removeprefix('sealed-')}").write_bytes(b"\n".join(keep) + b"\n")
            path.unlink()
        if not any(day_dir.iterdir()):
            day_dir.rmdir()
    writer.close()
    return out

