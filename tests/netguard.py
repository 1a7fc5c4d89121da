"""A network guard for tests: every connection or name lookup that is not loopback is refused and counted.

Patches the socket layer itself (``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo``), which
httpx, aiohttp, urllib and the OpenAI/Anthropic SDKs inside litellm all go through, sync and async.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from contextlib import contextmanager
from typing import Iterator


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self) -> None:
        self.refused: list[str] = []     # "host:port" of every refused attempt
        self.allowed = 0
        self._lock = threading.Lock()

    def _note(self, where: str) -> None:
        with self._lock:
            self.refused.append(where)


@contextmanager
def refuse_non_loopback() -> Iterator[Guard]:
    guard = Guard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address) -> None:
        if sock.family == socket.AF_UNIX:
            return
        host, port = address[0], address[1]
        if not _is_loopback(str(host)):
            guard._note(f"{host}:{port}")
            raise ConnectionRefusedError(111, f"test network guard: {host}:{port} is not loopback")
        guard.allowed += 1

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host, port, *args, **kw):
        if host is not None and not _is_loopback(host if isinstance(host, str) else host.decode()):
            guard._note(f"{host}:{port} (lookup)")
            raise socket.gaierror(socket.EAI_NONAME, f"test network guard: {host} is not loopback")
        return real_getaddrinfo(host, port, *args, **kw)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.getaddrinfo = getaddrinfo
    try:
        yield guard
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex
        socket.getaddrinfo = real_getaddrinfo
