"""The files of a route log and the low-level ways to touch them (see the package docstring: Files)."""
from __future__ import annotations

import fcntl
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DEFAULT_LOG_DIR = "routelog"
JSONL_NAME = "routes.jsonl"
STATE_LOCK = ".routelog.lock"
COMPACT_LOCK = ".compact.lock"


def day_of(line: str) -> str:
    i = line.index('"timestamp":"') + 13
    return line[i:i + 10]


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


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
