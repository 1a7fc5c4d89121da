"""The simulator as an aiohttp app: every protocol's routes, the ``/_sim`` control endpoints, and ways to run it
(:class:`SimServer` in a background thread, :func:`serve` in the foreground)."""
from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import asdict
from typing import Any, Callable

from aiohttp import web

from .faults import SimState
from .handling import Drop, handle
from .protocols import PROTOCOL_HANDLERS, PROTOCOLS, WireProtocol


def create_app(state: SimState) -> web.Application:
    @web.middleware
    async def drops(request: web.Request, handler):
        try:
            return await handler(request)
        except Drop:
            raise asyncio.CancelledError() from None   # aiohttp then closes without writing anything

    app = web.Application(middlewares=[drops])

    def bound(proto: WireProtocol) -> Callable:
        async def h(request: web.Request) -> web.StreamResponse:
            return await handle(request, state, proto)
        return h

    for proto in PROTOCOL_HANDLERS.values():
        for path in proto.paths:
            app.router.add_post(path, bound(proto))

    async def set_model(request: web.Request) -> web.Response:
        try:
            b = state.set(request.match_info["name"], await request.json())
        except (TypeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(asdict(b))

    async def reset(request: web.Request) -> web.Response:
        state.reset()
        state.stats.clear()
        state.usage.clear()
        state.bodies.clear()
        return web.json_response({"ok": True})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(stats_of(state))

    async def usage(request: web.Request) -> web.Response:
        out: dict[str, dict[str, Any]] = {}
        for (protocol, model), u in state.usage.items():
            out.setdefault(protocol, {})[model] = u
        return web.json_response(out)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "protocols": list(PROTOCOLS)})

    app.router.add_post("/_sim/models/{name}", set_model)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_get("/_sim/usage", usage)
    app.router.add_get("/_sim/health", health)
    return app


def stats_of(state: SimState) -> dict[str, Any]:
    per_model: Counter[str] = Counter()
    per_protocol: dict[str, dict[str, int]] = {}
    for (protocol, model), n in state.stats.items():
        per_model[model] += n
        per_protocol.setdefault(protocol, {})[model] = n
    return {"total": sum(per_model.values()), "models": dict(per_model), "protocols": per_protocol}


def _runner(state: SimState) -> web.AppRunner:
    # handler_cancellation: a client that gives up (timeout, stalled stream) frees its handler at once.
    return web.AppRunner(create_app(state), access_log=None, handler_cancellation=True, shutdown_timeout=1)


class SimServer:
    """Run the simulator in a background thread (for tests and notebooks).

    >>> with SimServer() as sim:
    ...     sim.url          # http://127.0.0.1:PORT
    """

    def __init__(self, port: int = 0, scenario: dict[str, Any] | None = None, seed: int = 0):
        self.state = SimState(scenario, seed)
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SimServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = _runner(self.state)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="routekit-sim", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the simulator did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "SimServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(port: int, scenario: dict[str, Any] | None = None, seed: int = 0, host: str = "127.0.0.1",
          on_ready: Callable[[], None] | None = None) -> None:
    """Serve in the foreground until interrupted (``routekit sim serve``); ``on_ready`` once the port is bound (a
    port taken is an OSError before it)."""

    async def main() -> None:
        runner = _runner(SimState(scenario, seed))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=1024).start()
            if on_ready:
                on_ready()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
