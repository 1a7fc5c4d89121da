"""The files of a route log and the low-level ways to touch them (see the package docstring: Files)."""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Iterator

from ..errors import BadInput

DEFAULT_LOG_DIR = "routelog"
JSONL_NAME = "routes.jsonl"
STATE_LOCK = ".routelog.lock"
COMPACT_LOCK = ".compact.lock"


def day_of(line: str) -> str:
    i = line.index('"timestamp":"') + 13
    return line[i:i + 10]


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def require_log(root: str | os.PathLike) -> Path:
    """``root`` as a route log to read: BadInput if it is not a directory, or holds files but no ``date=``
    partition (a typo, or the log's parent, must not read as an empty log). Writers and the spool create a
    missing log instead."""
    if not Path(root).is_dir():
        raise BadInput(f"no route log at {root} (a directory of date=YYYY-MM-DD partitions)")
    not_a_log(root, os.listdir(root))
    return Path(root)


def not_a_log(root: Any, names: list[str]) -> None:
    """BadInput when a directory of these entries cannot be a route log: it holds something, but no ``date=``
    partition (a fresh log holds nothing, or only the log's own ``.`` and ``_`` files)."""
    if not any(n.startswith("date=") for n in names) and any(not n.startswith(("_", ".")) for n in names):
        raise BadInput(f"{root} holds no date=YYYY-MM-DD partitions: not a route log (nothing read or written)")


def parse_day(value: Any, name: str = "") -> date | None:
    """A day as the log is partitioned by it (YYYY-MM-DD, UTC), from that text or a date; None stays None.

    Anything else is :class:`BadInput` naming ``name``: a day compared as text with the partitions would take
    "2026-02-30" or "20261001" quietly and select nothing, or everything."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise BadInput(f"{name + ': ' if name else ''}{value!r} is not a day (YYYY-MM-DD)")


def parse_period(since: Any, until: Any,
                 names: tuple[str, str] = ("since", "until")) -> tuple[date | None, date | None]:
    """``since`` .. ``until`` (both days inclusive, either open) by :func:`parse_day`; one that ends before it
    starts is :class:`BadInput`, not an empty period."""
    first, last = parse_day(since, names[0]), parse_day(until, names[1])
    if first and last and last < first:
        raise BadInput(f"{names[1]} {last} is before {names[0]} {first}")
    return first, last


def inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


@contextmanager
def flocked(path: Path, mode: int, *, required: bool = True) -> Iterator[bool]:
    """Hold ``flock(mode)`` on ``path``; yields False (unlocked) if a reader cannot create it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if required:
            raise
        yield False
        return
    try:
        fcntl.flock(fd, mode)
        yield True
    finally:
        os.close(fd)


def new_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(3)}"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
