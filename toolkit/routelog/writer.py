"""Appending records to a route log (see the package docstring: Writers and crashes)."""
from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .files import DEFAULT_LOG_DIR, JSONL_NAME, day_of, inode, parse_day
from .record import record_line


@dataclass
class RouteLogWriter:
    """Append records to ``root/date=YYYY-MM-DD/routes.jsonl`` (see the module docstring)."""

    root: Path = field(default_factory=lambda: Path(os.environ.get("ROUTEKIT_LOG_DIR", DEFAULT_LOG_DIR)))
    durable: bool = False   # fsync every append: survives power loss, costs a disk flush per record
    _fds: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _writable_at: float = field(default=-1e9, repr=False)   # when writable() last found the directory fine

    WRITABLE_RECHECK_S = 5.0   # a check costs a mkdir and an access call: not on every request

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def writable(self) -> str | None:
        """None when the log directory can take records, else why not (a full disk shows only on write)."""
        now = time.monotonic()
        if now - self._writable_at < self.WRITABLE_RECHECK_S:
            return None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"cannot create {self.root}: {e.strerror or e}"
        if not os.access(self.root, os.W_OK):
            return f"{self.root} is not writable"
        self._writable_at = now
        return None

    def path_for(self, day: str) -> Path:
        return self.root / f"date={day}" / JSONL_NAME

    def write(self, record: dict[str, Any]) -> None:
        line = record_line(record)
        self.write_lines(day_of(line), [line])

    def write_records(self, records: Iterable[dict[str, Any]]) -> int:
        """Clean and append many records (grouped into one append per day and chunk)."""
        by_day: dict[str, list[str]] = {}
        n = 0
        for rec in records:
            line = record_line(rec)
            by_day.setdefault(day_of(line), []).append(line)
            n += 1
        for day, lines in by_day.items():
            self.write_lines(day, lines)
        return n

    def write_lines(self, day: str, lines: Iterable[str | bytes], chunk_bytes: int = 1 << 20) -> None:
        """Append already-serialised, already-clean records of one day (the batch API).

        Lines are gathered into appends of about ``chunk_bytes``; each append is whole lines.
        """
        parse_day(day, "day")  # a partition named by a day that is not one would never be read back
        buf: list[bytes] = []
        size = 0
        for line in lines:
            b = line.encode() if isinstance(line, str) else line
            if b"\n" in b:
                raise ValueError("a route record line must not contain a newline")
            buf.append(b)
            size += len(b) + 1
            if size >= chunk_bytes:
                self._append(day, b"\n".join(buf) + b"\n")
                buf, size = [], 0
        if buf:
            self._append(day, b"\n".join(buf) + b"\n")

    def _append(self, day: str, data: bytes) -> None:
        path = self.path_for(day)
        with self._lock:
            while True:
                fd = self._fd(day)
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                if st.st_ino == inode(path):
                    break
                # The compactor sealed (renamed) this file since we opened it: start a new one.
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._forget(day)
            try:
                if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                    data = b"\n" + data  # a writer died mid-line: keep its fragment on a line of its own
                view = memoryview(data)
                try:
                    while view:
                        view = view[os.write(fd, view):]
                except OSError:
                    os.ftruncate(fd, st.st_size)  # a full disk took part of it: no torn line stays behind
                    self._writable_at = -1e9
                    raise
                if self.durable:
                    os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _fd(self, day: str) -> int:
        entry = self._fds.get(day)
        if entry is not None and entry[1] != os.getpid():
            # Inherited across fork: flock does not separate us from the parent on a shared descriptor.
            for fd, _ in self._fds.values():
                os.close(fd)
            self._fds.clear()
            entry = None
        if entry is None:
            path = self.path_for(day)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            if len(self._fds) > 4:  # a long-running process moves from day to day
                for old in list(self._fds)[:-2]:
                    os.close(self._fds.pop(old)[0])
            self._fds[day] = entry = (fd, os.getpid())
        return entry[0]

    def _forget(self, day: str) -> None:
        fd, _ = self._fds.pop(day)
        os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd, pid in self._fds.values():
                if pid == os.getpid():
                    os.close(fd)
            self._fds.clear()

    def __enter__(self) -> "RouteLogWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


