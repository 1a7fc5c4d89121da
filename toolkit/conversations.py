"""What a Router remembers of agent conversations: who made each tool call, and where a conversation is pinned.

A fallback in the middle of a tool-using conversation must be visible: the record of a turn names the models
(and providers) that produced the tool calls the conversation already holds, and says when this turn was answered
by another one (toolkit/routelog/schema.py: ``earlier_tool_calls_*``, ``conversation_switched``).  Tool calls
are known by their ids, which every vendor returns and every conversation sends back.

A route with ``sticky: conversation`` keeps later turns of a caller's ``conversation_id`` on the model that served
the conversation last; if it fails, the fallback answers, the record flags the switch, and the conversation is
pinned to the model that answered.

The memory is this process's own and bounded (least recently used entries are forgotten first); a tool call it
does not know — made before a restart, or by another process — is reported as ``unknown``, never guessed.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Iterable

UNKNOWN = "unknown"
MAX_CONVERSATIONS = 10_000
MAX_TOOL_CALLS = 100_000


class ConversationMemory:
    """Thread-safe: a Router serves sync, async and streamed calls from any thread."""

    def __init__(self, max_conversations: int = MAX_CONVERSATIONS, max_tool_calls: int = MAX_TOOL_CALLS):
        self._pins: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._calls: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._max_pins, self._max_calls = max_conversations, max_tool_calls
        self._lock = threading.Lock()

    def pinned(self, intent: str, conversation_id: str | None) -> str | None:
        """The alias the conversation is pinned to on this route, if any."""
        if conversation_id is None:
            return None
        with self._lock:
            return self._pins.get((intent, conversation_id))

    def producers(self, tool_call_ids: Iterable[str]) -> list[tuple[str, str]]:
        """(alias, provider) that made each tool call, in order, one entry per distinct producer in a row;
        ``("unknown", "unknown")`` for a call this memory does not hold."""
        out: list[tuple[str, str]] = []
        with self._lock:
            for call_id in tool_call_ids:
                who = self._calls.get(call_id, (UNKNOWN, UNKNOWN))
                if not out or out[-1] != who:
                    out.append(who)
        return out

    def remember(self, intent: str, conversation_id: str | None, alias: str, provider: str,
                 tool_call_ids: Iterable[str], pin: bool) -> None:
        """A served turn: its tool calls' producer, and (``pin``) the conversation's model from now on."""
        with self._lock:
            for call_id in tool_call_ids:
                self._calls[call_id] = (alias, provider)
                self._calls.move_to_end(call_id)
            while len(self._calls) > self._max_calls:
                self._calls.popitem(last=False)
            if pin and conversation_id is not None:
                self._pins[(intent, conversation_id)] = alias
                self._pins.move_to_end((intent, conversation_id))
                while len(self._pins) > self._max_pins:
                    self._pins.popitem(last=False)
