"""Real services the tests start and stop themselves: redis-server (with AOF), a tmpfs of a given size."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .conftest import free_port


class RedisServer:
    """One redis-server (Debian's) on 127.0.0.1; durable with ``appendfsync always`` (the routekit docs'
    setting for a budget ledger), so ``kill -9`` and a restart keep every acknowledged write."""

    def __init__(self, workdir: Path, *, aof: bool = True):
        self.exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        assert os.path.exists(self.exe), "redis-server is not installed (make system / apt-get install redis-server)"
        self.workdir, self.aof, self.port = Path(workdir), aof, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        import redis

        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        with open(self.workdir / "redis.log", "ab") as logf:
            self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                          str(self.workdir), "--save", "", *durability, "--daemonize", "no"],
                                         stdout=logf, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.time() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    raise RuntimeError(f"redis-server did not start: {(self.workdir / 'redis.log').read_text()[-500:]}")
                time.sleep(0.05)
        client.close()
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextmanager
def tmpfs(path: Path, size: str = "256k", *, read_only: bool = False) -> Iterator[Path]:
    """A real, small filesystem (root only): a full disk or a read-only mount, not a permission trick that
    root would walk through."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path, leave: int) -> None:
    """Fill the filesystem holding ``path`` until about ``leave`` bytes are free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(path / "ballast", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))
