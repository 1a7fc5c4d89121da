"""Driving the routing decision: sync, async, streamed and async-streamed, over one step function.

The decision (``Router._decide``) is a generator that *yields* what it wants done — ``(CALL, spec)``: call
this candidate; ``(SLEEP, seconds)``: wait — and receives the outcome: a transport ``Reply`` sent in, or a
``TransportError`` thrown in.  :class:`Steps` is that protocol, written once; the four drivers below differ only
in how they call the transport (``complete``, ``await acomplete``, ``stream``, ``astream``) and how they wait.

Streaming passes text deltas (``str``) and pieces of tool calls (:class:`~toolkit.chat.ToolCallDelta`) on as
they arrive; either counts as shown.  A candidate that fails before its first delta falls back like any failure.
After the first token there is no silent switch: the decision raises ``StreamInterrupted`` — unless the route sets
``stream_restart: true``, in which case :class:`StreamRestart` is yielded between the two answers.  A caller who
stops reading (``close()``) makes the attempt ``abandoned``: it is recorded and its budget hold settled.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Generator, Iterator

from .chat import ToolCallDelta
from .errors import RoutingError, TransportError
from .result import ABANDONED, Request, Result

CALL, SLEEP = "call", "sleep"

Decision = Generator[tuple[str, Any], Any, Result]


@dataclass(frozen=True)
class StreamRestart:
    """Yielded by a stream whose route allows restarts, between the deltas of two candidates:
    discard the ``discarded`` characters shown so far; the next deltas are a new answer."""

    failed_alias: str
    reason: str                   # the taxonomy kind of the cut
    discarded: int


Shown = str | ToolCallDelta | StreamRestart   # what a routed stream yields


class RoutedStream:
    """What ``Router.stream`` returns: iterate for text deltas (``str``) and tool-call pieces
    (:class:`~toolkit.chat.ToolCallDelta`), then read ``result`` (its ``tool_calls`` whole).

    >>> s = router.stream("triage", "Is this spam?")
    >>> for delta in s:
    ...     print(delta, end="", flush=True)
    >>> s.result.served_model, s.result.cost_usd

    A failure raises while iterating (``NoEligibleRoute``, ``StreamInterrupted``).
    ``close()`` (or leaving a ``with`` block) before the end stops the call and records it as abandoned.
    """

    def __init__(self, drive: Callable[["RoutedStream"], Iterator[Shown]]):
        self.result: Result | None = None
        self._it = drive(self)

    def __iter__(self) -> "RoutedStream":
        return self

    def __next__(self) -> Shown:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    def __enter__(self) -> "RoutedStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RoutedAsyncStream:
    """What ``Router.astream`` returns: ``async for`` text deltas, then read ``result``."""

    def __init__(self, drive: Callable[["RoutedAsyncStream"], AsyncIterator[Shown]]):
        self.result: Result | None = None
        self._it = drive(self)

    def __aiter__(self) -> "RoutedAsyncStream":
        return self

    async def __anext__(self) -> Shown:
        return await self._it.__anext__()

    async def aclose(self) -> None:
        await self._it.aclose()

    async def __aenter__(self) -> "RoutedAsyncStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class Steps:
    """A decision stepped through: :meth:`next` is what it wants done next, or None once it has finished
    (its :class:`Result` is then ``result``); :meth:`answered` / :meth:`failed` report how a call went."""

    def __init__(self, decision: Decision):
        self._decision = decision
        self._send: Any = None
        self._throw: TransportError | None = None
        self.result: Result | None = None

    def next(self) -> tuple[str, Any] | None:
        try:
            if self._throw is not None:
                action = self._decision.throw(self._throw)
            else:
                action = self._decision.send(self._send)
        except StopIteration as stop:
            self.result = stop.value
            return None
        self._send = self._throw = None
        return action

    def answered(self, reply: Any) -> None:
        self._send = reply

    def failed(self, error: TransportError) -> None:
        self._throw = error

    def abandon(self, spec: Any, t0: float) -> None:
        """The caller stopped reading: let the decision record the attempt (and settle its budget hold)."""
        stop = TransportError(ABANDONED, "the caller stopped reading the stream", provider=spec.provider_prefix,
                              latency_ms=(time.perf_counter() - t0) * 1000)
        try:
            self._decision.throw(stop)
        except (RoutingError, StopIteration):
            pass


def drive_sync(decision: Decision, transport: Any, req: Request, sleep: Callable[[float], None]) -> Result:
    steps = Steps(decision)
    while (action := steps.next()) is not None:
        kind, arg = action
        if kind == SLEEP:
            sleep(arg)
            continue
        try:
            steps.answered(transport.complete(arg, req.messages, max_tokens=req.max_tokens, options=req.options))
        except TransportError as e:
            steps.failed(e)
    return steps.result


async def drive_async(decision: Decision, transport: Any, req: Request) -> Result:
    steps = Steps(decision)
    while (action := steps.next()) is not None:
        kind, arg = action
        if kind == SLEEP:
            await asyncio.sleep(arg)
            continue
        try:
            steps.answered(await transport.acomplete(arg, req.messages, max_tokens=req.max_tokens,
                                                     options=req.options))
        except TransportError as e:
            steps.failed(e)
    return steps.result


def drive_stream(decision: Decision, transport: Any, req: Request, sleep: Callable[[float], None],
                 out: RoutedStream) -> Iterator[Shown]:
    """Like :func:`drive_sync`, calling ``transport.stream`` and passing its deltas on as they arrive."""
    steps = Steps(decision)
    restart: StreamRestart | None = None   # to announce before the next candidate's first delta
    while (action := steps.next()) is not None:
        kind, spec = action
        if kind == SLEEP:
            sleep(spec)
            continue
        pending, restart = restart, None
        shown: list[str] = []
        t0 = time.perf_counter()
        chunks = None
        try:
            if pending is not None:   # the route starts over after a cut: say so first
                yield pending
            chunks = transport.stream(spec, req.messages, max_tokens=req.max_tokens, options=req.options)
            for item in chunks:
                if isinstance(item, (str, ToolCallDelta)):
                    shown.append(_text(item))
                    yield item
                else:
                    steps.answered(item)
        except TransportError as e:
            steps.failed(_shown(e, shown))
            restart = StreamRestart(spec.alias, e.kind, len(e.partial)) if e.partial else None
        except GeneratorExit:
            if chunks is not None:
                chunks.close()
            steps.abandon(spec, t0)
            raise
    out.result = steps.result


async def drive_astream(decision: Decision, transport: Any, req: Request, out: RoutedAsyncStream
                        ) -> AsyncIterator[Shown]:
    """Async :func:`drive_stream`."""
    steps = Steps(decision)
    restart: StreamRestart | None = None
    while (action := steps.next()) is not None:
        kind, spec = action
        if kind == SLEEP:
            await asyncio.sleep(spec)
            continue
        pending, restart = restart, None
        shown: list[str] = []
        t0 = time.perf_counter()
        chunks = None
        try:
            if pending is not None:
                yield pending
            chunks = transport.astream(spec, req.messages, max_tokens=req.max_tokens, options=req.options)
            async for item in chunks:
                if isinstance(item, (str, ToolCallDelta)):
                    shown.append(_text(item))
                    yield item
                else:
                    steps.answered(item)
        except TransportError as e:
            steps.failed(_shown(e, shown))
            restart = StreamRestart(spec.alias, e.kind, len(e.partial)) if e.partial else None
        except GeneratorExit:
            if chunks is not None:
                await chunks.aclose()
            steps.abandon(spec, t0)
            raise
    out.result = steps.result


def _text(item: str | ToolCallDelta) -> str:
    return item if isinstance(item, str) else (item.name or "") + item.arguments


def _shown(e: TransportError, shown: list[str]) -> TransportError:
    """Mark a failure with what the caller already saw (whatever the transport knew)."""
    e.partial = e.partial or "".join(shown)
    return e
