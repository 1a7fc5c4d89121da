"""A local provider simulator: a real HTTP server on 127.0.0.1 for tests, demos and drills.

It answers any model name in each vendor's own protocol, and every model obeys one
fault model (:class:`Behaviour`): latency, error rate and status (429 with
Retry-After, 500, 503, 529), timeouts, empty answers, or ``down``.  Behaviour is
set per model from a scenario file, or at run time::

    POST /_sim/models/{name}   {"down": true}          change one model
    POST /_sim/reset                                    back to the scenario
    GET  /_sim/stats                                    request counts per protocol and model

Scenario file (YAML)::

    default: {latency_ms: 20}
    models:
      claude-sonnet-4-5: {down: true}
      gpt-4o-mini: {error_rate: 0.2, error_status: 429, retry_after_s: 1}

Model names are what the client puts on the wire: litellm strips its provider
prefix, so ``anthropic/claude-sonnet-4-5`` arrives as ``claude-sonnet-4-5``.
"""
from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Behaviour:
    latency_ms: float = 5.0          # median added latency
    latency_sigma: float = 0.0       # log-normal spread (0 = fixed)
    error_rate: float = 0.0          # share of requests answered with error_status
    error_status: int = 500          # 429, 500, 503 or 529
    retry_after_s: float | None = None
    down: bool = False               # connection dropped without an answer
    timeout: bool = False            # never answers (the client times out)
    empty: bool = False              # 200 with empty text
    answer: str | None = None        # fixed answer text; default: a deterministic echo
    output_tokens: int | None = None
    cached_tokens: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: "Behaviour | None" = None) -> "Behaviour":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown behaviour keys {bad}; known: {sorted(known)}")
        return replace(base or cls(), **d)


class SimState:
    def __init__(self, scenario: dict[str, Any] | None = None, seed: int = 0):
        self.scenario = scenario or {}
        self.rng = random.Random(seed)
        self.stats: Counter[tuple[str, str]] = Counter()
        self.reset()

    def reset(self) -> None:
        self.default = Behaviour.from_dict(self.scenario.get("default", {}))
        self.models = {name: Behaviour.from_dict(b, self.default)
                       for name, b in (self.scenario.get("models") or {}).items()}

    def behaviour(self, model: str) -> Behaviour:
        return self.models.get(model, self.default)

    def set(self, model: str, changes: dict[str, Any]) -> Behaviour:
        self.models[model] = Behaviour.from_dict(changes, self.behaviour(model))
        return self.models[model]


def load_scenario(path: str | Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scenario is a mapping with 'default' and/or 'models'")
    for name, b in (data.get("models") or {}).items():
        try:
            Behaviour.from_dict(b)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: models.{name}: {e}") from None
    return data


# --- the fault model, shared by every protocol ------------------------------------------------


class _Fault(Exception):
    def __init__(self, response: web.StreamResponse | None):
        self.response = response


def _tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


def _prompt_text(messages: list[dict]) -> str:
    parts = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, list):
            c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
        parts.append(str(c or ""))
    return " ".join(parts)


async def _apply_faults(request: web.Request, state: SimState, protocol: str, model: str) -> Behaviour:
    state.stats[(protocol, model)] += 1
    b = state.behaviour(model)
    if b.down:
        # A vendor that is down: the connection closes with no answer.
        request.transport.close()
        raise _Fault(None)
    delay = b.latency_ms * (state.rng.lognormvariate(0, b.latency_sigma) if b.latency_sigma else 1.0)
    await asyncio.sleep(delay / 1000)
    if b.timeout:
        await asyncio.sleep(3600)
    if b.error_rate and state.rng.random() < b.error_rate:
        headers = {"Retry-After": f"{b.retry_after_s:g}"} if b.retry_after_s is not None else {}
        body = {"error": {"message": f"simulated {b.error_status} for {model}",
                          "type": "overloaded_error" if b.error_status == 529 else "sim_error",
                          "code": b.error_status}}
        raise _Fault(web.json_response(body, status=b.error_status, headers=headers))
    return b


def _answer(b: Behaviour, model: str, prompt: str) -> tuple[str, int, int]:
    if b.empty:
        text = ""
    elif b.answer is not None:
        text = b.answer
    else:
        words = prompt.split()
        text = f"[{model}] " + " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    out = b.output_tokens if b.output_tokens is not None else (_tokens(text) if text else 0)
    return text, _tokens(prompt), out


# --- protocols ---------------------------------------------------------------------------------


async def _openai_chat(request: web.Request, state: SimState, protocol: str = "openai") -> web.StreamResponse:
    body = await request.json()
    model = body.get("model", "unknown")
    b = await _apply_faults(request, state, protocol, model)
    text, pin, pout = _answer(b, model, _prompt_text(body.get("messages", [])))
    usage = {"prompt_tokens": pin, "completion_tokens": pout, "total_tokens": pin + pout,
             "prompt_tokens_details": {"cached_tokens": min(b.cached_tokens, pin)}}
    rid = "chatcmpl-" + uuid.uuid4().hex[:12]
    if not body.get("stream"):
        return web.json_response({
            "id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    pieces = text.split(" ") if text else []
    for i, piece in enumerate(pieces):
        chunk = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                 "choices": [{"index": 0, "delta": {"content": piece if i == 0 else " " + piece}, "finish_reason": None}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    last = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        last["usage"] = usage
    await resp.write(f"data: {json.dumps(last)}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _ollama_chat(request: web.Request, state: SimState) -> web.StreamResponse:
    body = await request.json()
    model = body.get("model", "unknown")
    b = await _apply_faults(request, state, "ollama", model)
    text, pin, pout = _answer(b, model, _prompt_text(body.get("messages", [])))
    base = {"model": model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    done = {**base, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
            "prompt_eval_count": pin, "eval_count": pout, "total_duration": int(b.latency_ms * 1e6)}
    if body.get("stream") is False:
        return web.json_response({**done, "message": {"role": "assistant", "content": text}})
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for piece in (text.split(" ") if text else []):
        await resp.write((json.dumps({**base, "message": {"role": "assistant", "content": piece + " "},
                                      "done": False}) + "\n").encode())
    await resp.write((json.dumps(done) + "\n").encode())
    await resp.write_eof()
    return resp


# --- the app -----------------------------------------------------------------------------------


def create_app(state: SimState) -> web.Application:
    @web.middleware
    async def faults(request: web.Request, handler):
        try:
            return await handler(request)
        except _Fault as f:
            if f.response is None:
                raise asyncio.CancelledError() from None
            return f.response
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "request body is not JSON"}}, status=400)

    app = web.Application(middlewares=[faults])

    def route(handler, **kw):
        async def bound(request: web.Request) -> web.StreamResponse:
            return await handler(request, state, **kw)
        return bound

    app.router.add_post("/v1/chat/completions", route(_openai_chat))
    app.router.add_post("/chat/completions", route(_openai_chat))
    app.router.add_post("/api/chat", route(_ollama_chat))

    async def set_model(request: web.Request) -> web.Response:
        try:
            b = state.set(request.match_info["name"], await request.json())
        except (TypeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(asdict(b))

    async def reset(request: web.Request) -> web.Response:
        state.reset()
        state.stats.clear()
        return web.json_response({"ok": True})

    async def stats(request: web.Request) -> web.Response:
        per_model: Counter[str] = Counter()
        per_protocol: dict[str, dict[str, int]] = {}
        for (protocol, model), n in state.stats.items():
            per_model[model] += n
            per_protocol.setdefault(protocol, {})[model] = n
        return web.json_response({"total": sum(per_model.values()), "models": dict(per_model),
                                  "protocols": per_protocol})

    app.router.add_post("/_sim/models/{name}", set_model)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/stats", stats)
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/_sim/health", health)
    return app


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
            self._runner = web.AppRunner(create_app(self.state), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=512)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="routekit-sim", daemon=True)
        self._thread.start()
        ready.wait(10)
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


def serve(port: int, scenario: dict[str, Any] | None = None, seed: int = 0) -> None:
    """Serve in the foreground until interrupted (``routekit sim serve``)."""
    web.run_app(create_app(SimState(scenario, seed)), host="127.0.0.1", port=port, access_log=None,
                print=lambda *_: None)
