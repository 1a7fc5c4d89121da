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
    setting for a budget ledger), so ``kill -9`` and a restart (``start()`` again, same port and data) keep
    every acknowledged write.  ``password`` turns on AUTH (the URL carries it); ``netns`` runs it inside a
    network namespace, listening on ``binds`` (readiness is then read from its log)."""

    def __init__(self, workdir: Path, *, aof: bool = True, password: str | None = None, netns: str | None = None,
                 binds: tuple[str, ...] = ("127.0.0.1",)):
        self.exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        assert os.path.exists(self.exe), "redis-server is not installed (make system / apt-get install redis-server)"
        self.workdir, self.aof, self.port = Path(workdir), aof, free_port()
        self.password, self.netns, self.binds = password, netns, binds
        self.url = self.url_for(binds[0])
        self.proc: subprocess.Popen | None = None

    def url_for(self, host: str) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{host}:{self.port}/0"

    def start(self) -> "RedisServer":
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        auth = ["--requirepass", self.password] if self.password else []
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        log = self.workdir / "redis.log"
        seen = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as logf:
            self.proc = subprocess.Popen([*prefix, self.exe, "--port", str(self.port), "--bind", *self.binds,
                                          "--dir", str(self.workdir), "--save", "", *durability, *auth,
                                          "--daemonize", "no"], stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while not self._ready(seen):
            if time.time() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError(f"redis-server did not start: {log.read_text()[-500:]}")
            time.sleep(0.05)
        return self

    def _ready(self, seen: int) -> bool:
        if self.netns:   # not reachable from here: its log says when it listens
            with open(self.workdir / "redis.log", "rb") as f:
                f.seek(seen)
                return b"Ready to accept connections" in f.read()
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.ping()
            return True
        except redis.ConnectionError:
            return False
        finally:
            client.close()

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
