"""The OpenAI-style chat request an agent sends, and the tool calls it gets back, in routekit's own terms.

The Router's four calls take the OpenAI chat parameters as keyword arguments (:data:`CHAT_PARAMETERS`); litellm
translates them per vendor behind toolkit/transport.py, so nothing above the transport ever sees a vendor's tool
format.  Everything is checked before anything is sent, and a bad value is a :class:`~toolkit.errors.RequestError`
naming the argument (``tools[1].function.name``, ``messages[3].tool_call_id``...).

- :class:`ChatOptions`: tools, tool_choice, response_format (``text``, ``json_object``, ``json_schema``),
  temperature, top_p, stop, seed — validated once (:func:`chat_options`), passed to litellm as given.
- Messages (:func:`check_messages`): roles system / developer / user / assistant / tool; content a string or a
  list of ``text`` and ``image_url`` parts; an assistant turn may carry ``tool_calls``; a ``tool`` turn answers
  an earlier tool call by its ``tool_call_id``.
- :class:`ToolCall`: what a model asked for, normalized — id, function name, arguments as JSON text;
  :class:`ToolCallDelta`: a piece of one, as a stream delivers it; :func:`assistant_message`: the turn to append
  to the conversation.
- :func:`needs`: what a request needs of a model (:data:`CAPABILITIES`: tools, json_schema, vision), which the
  Router compares with what each candidate can do (toolkit/capabilities.py, toolkit/eligibility.py).
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import RequestError

CHAT_PARAMETERS = ("tools", "tool_choice", "response_format", "temperature", "top_p", "stop", "seed")
CAPABILITIES = ("tools", "json_schema", "vision")
ROLES = ("system", "developer", "user", "assistant", "tool")
RESPONSE_KINDS = ("text", "json_object", "json_schema")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # what every vendor accepts as a function name
MAX_STOP = 4


@dataclass(frozen=True)
class ToolCall:
    """A call a model asked for: ``arguments`` is JSON text (checked against the tool's schema by the Router)."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call as a stream delivers it: the first piece of call ``index`` carries its ``id`` and
    ``name``; ``arguments`` pieces concatenate to the call's JSON text."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class ChatOptions:
    """The OpenAI chat parameters of one request (None: not given, so not sent)."""

    tools: tuple[dict, ...] = ()
    tool_choice: str | dict | None = None
    response_format: dict | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | tuple[str, ...] | None = None
    seed: int | None = None
    # tool name -> the validator of its arguments; "" -> that of the response schema (see schema_validator)
    _validators: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def kwargs(self) -> dict[str, Any]:
        """The parameters to send (litellm's names, OpenAI's shapes)."""
        out: dict[str, Any] = {}
        if self.tools:
            out["tools"] = list(self.tools)
        for name in ("tool_choice", "response_format", "temperature", "top_p", "seed"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.stop is not None:
            out["stop"] = self.stop if isinstance(self.stop, str) else list(self.stop)
        return out

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(t["function"]["name"] for t in self.tools)

    @property
    def response_kind(self) -> str | None:
        """``text``, ``json_object``, ``json_schema``, or None when no response_format was given."""
        return self.response_format["type"] if self.response_format else None

    def tool_validator(self, name: str) -> "SchemaValidator | None":
        """The validator of the arguments of tool ``name`` (None: no such tool)."""
        return self._validators.get(name) if name else None

    @property
    def response_validator(self) -> "SchemaValidator | None":
        """The validator of a ``json_schema`` answer (None: no schema asked for)."""
        return self._validators.get("")


NO_OPTIONS = ChatOptions()


def chat_options(params: dict[str, Any]) -> ChatOptions:
    """Check the chat parameters of a call (names from :data:`CHAT_PARAMETERS`) and freeze them."""
    unknown = sorted(set(params) - set(CHAT_PARAMETERS))
    if unknown:
        raise RequestError(f"unknown chat parameter {unknown[0]!r} (known: {', '.join(CHAT_PARAMETERS)}, "
                           f"plus max_tokens, team, sensitivity, conversation_id)")
    given = {k: v for k, v in params.items() if v is not None}
    if not given:
        return NO_OPTIONS
    tools = _tools(given.get("tools"))
    validators = {t["function"]["name"]: _schema(t["function"].get("parameters") or {},
                                                 f"tools[{i}].function.parameters") for i, t in enumerate(tools)}
    choice = given.get("tool_choice")
    if choice is not None:
        _tool_choice(choice, validators)
    fmt = given.get("response_format")
    if fmt is not None:
        _response_format(fmt)
        if fmt["type"] == "json_schema":
            validators[""] = _schema(fmt["json_schema"].get("schema") or {}, "response_format.json_schema.schema")
    temperature = _number(given, "temperature", 0, 2)
    top_p = _number(given, "top_p", 0, 1)
    seed = given.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(f"seed must be an integer, not {type(seed).__name__}")
    return ChatOptions(tools=tools, tool_choice=choice, response_format=fmt, temperature=temperature, top_p=top_p,
                       stop=_stop(given.get("stop")), seed=seed, _validators=validators)


def _number(given: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = given.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(f"{name} must be a number from {low} to {high}, not {value!r}")
    return value


def _stop(stop: Any) -> str | tuple[str, ...] | None:
    if stop is None or isinstance(stop, str):
        return stop
    if isinstance(stop, (list, tuple)) and 0 < len(stop) <= MAX_STOP and all(isinstance(s, str) for s in stop):
        return tuple(stop)
    raise RequestError(f"stop must be a string or a list of 1 to {MAX_STOP} strings")


def _tools(tools: Any) -> tuple[dict, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, (list, tuple)):
        raise RequestError("tools must be a list of {'type': 'function', 'function': {...}} objects")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise RequestError(f"{where} must be {{'type': 'function', 'function': {{'name': ..., "
                               f"'parameters': {{...}}}}}}")
        fn = tool["function"]
        name = fn.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise RequestError(f"{where}.function.name must be 1 to 64 letters, digits, '_' or '-', not {name!r}")
        if name in seen:
            raise RequestError(f"{where}.function.name {name!r} is offered twice")
        seen.add(name)
    return tuple(tools)


def _schema(schema: Any, where: str) -> Any:
    if not isinstance(schema, dict):
        raise RequestError(f"{where} must be a JSON schema object")
    try:
        return schema_validator(schema)
    except ValueError as e:
        raise RequestError(f"{where} is not a valid JSON schema: {e}") from None


def schema_validator(schema: dict) -> "SchemaValidator":
    """A validator for ``schema``, the schema itself checked first (ValueError if it is not one).  Agents send the
    same few schemas on every turn: checking one costs milliseconds, so each is checked (and compiled) once."""
    return _validator(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=512)
def _validator(text: str) -> "SchemaValidator":
    return SchemaValidator(json.loads(text))


# Keywords of JSON Schema 2019-09 / 2020-12 that fastjsonschema (draft 4 to 7) would silently ignore.
_NEWER_KEYWORDS = ("prefixItems", "dependentRequired", "dependentSchemas", "unevaluated", "$dynamicRef",
                   "$recursiveRef", "minContains", "maxContains")


class SchemaValidator:
    """jsonschema decides (and explains); fastjsonschema, compiled once, answers the common case — a valid
    value — in about a microsecond where jsonschema takes twenty (every tool call and structured answer is
    checked on the routing path).  Remote ``$ref`` are never fetched."""

    def __init__(self, schema: dict):
        import jsonschema

        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as e:
            raise ValueError(e.message) from None
        from referencing import Registry

        # a registry of our own: jsonschema would otherwise fetch a remote $ref (a deprecated default of theirs)
        self.full = cls(schema, registry=Registry(retrieve=_no_fetch))
        self.fast = None
        if not any(k in json.dumps(schema) for k in _NEWER_KEYWORDS):
            import fastjsonschema

            try:
                self.fast = fastjsonschema.compile(schema, handlers={"http": _no_fetch, "https": _no_fetch},
                                                   use_default=False, use_formats=False,
                                                   detailed_exceptions=False)
            except Exception:  # noqa: BLE001 — anything it cannot compile is left to jsonschema
                self.fast = None

    def is_valid(self, value: Any) -> bool:
        if self.fast is not None:
            try:
                self.fast(value)
                return True
            except Exception:  # noqa: BLE001 — invalid, or beyond it: jsonschema has the last word
                pass
        return self.full.is_valid(value)

    def iter_errors(self, value: Any) -> Any:
        return self.full.iter_errors(value)


def _no_fetch(uri: str) -> Any:
    raise ValueError(f"remote $ref {uri} is not fetched")


def _tool_choice(choice: Any, schemas: dict[str, Any]) -> None:
    """``schemas``: the tools offered, by name."""
    if choice in ("none", "auto", "required"):
        if choice == "required" and not schemas:
            raise RequestError("tool_choice 'required' needs tools")
        return
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) and \
        choice.get("type") == "function" and isinstance(choice.get("function"), dict) else None
    if not isinstance(name, str):
        raise RequestError("tool_choice must be 'none', 'auto', 'required' or "
                           "{'type': 'function', 'function': {'name': ...}}")
    if name not in schemas:
        raise RequestError(f"tool_choice names {name!r}, which is not one of the tools offered "
                           f"({', '.join(schemas) or 'none'})")


def _response_format(fmt: Any) -> None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in RESPONSE_KINDS:
        raise RequestError(f"response_format.type must be one of {', '.join(RESPONSE_KINDS)}, not {kind!r}")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestError("response_format.json_schema must be {'name': ..., 'schema': {...}}")


# --- messages -----------------------------------------------------------------------------------------------------


def check_messages(messages: Any) -> list[dict]:
    """The conversation as a list of messages, or a :class:`RequestError` naming the first bad field."""
    if isinstance(messages, str) and messages.strip():
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, (list, tuple)) or not messages:
        raise RequestError("messages must be a non-empty string or a non-empty list of {'role': ..., 'content': ...}")
    called: set[str] = set()
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError(f"{where} must be an object with 'role' and 'content'")
        role = m.get("role")
        if role not in ROLES:
            raise RequestError(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
        calls = m.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise RequestError(f"{where}.tool_calls: only an assistant turn carries tool calls")
            called |= _check_calls(calls, where)
        content = m.get("content")
        if content is None and not (role == "assistant" and calls):
            raise RequestError(f"{where}.content is missing (only an assistant turn with tool_calls may omit it)")
        if content is not None:
            _check_content(content, f"{where}.content", images=role == "user")
        if role == "tool":
            ref = m.get("tool_call_id")
            if not isinstance(ref, str) or ref not in called:
                raise RequestError(f"{where}.tool_call_id {ref!r} answers no earlier assistant tool call")
    return list(messages)


def _check_calls(calls: Any, where: str) -> set[str]:
    if not isinstance(calls, list):
        raise RequestError(f"{where}.tool_calls must be a list")
    ids = set()
    for j, c in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(fn, dict):
            raise RequestError(f"{at} must be {{'id': ..., 'type': 'function', 'function': {{'name': ..., "
                               f"'arguments': '...'}}}}")
        if not isinstance(fn.get("name"), str) or not isinstance(fn.get("arguments"), str):
            raise RequestError(f"{at}.function needs 'name' and 'arguments' (JSON text)")
        ids.add(c["id"])
    return ids


def _check_content(content: Any, where: str, images: bool) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise RequestError(f"{where} must be a string or a list of parts")
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        at = f"{where}[{k}]"
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise RequestError(f"{at}.text must be a string")
        elif kind == "image_url" and images:
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise RequestError(f"{at}.image_url must be {{'url': 'https://...' or 'data:image/...;base64,...'}}")
        else:
            allowed = "'text' or 'image_url'" if images else "'text'"
            raise RequestError(f"{at}.type must be {allowed}, not {kind!r}")


def earlier_tool_call_ids(messages: list[dict]) -> list[str]:
    """The ids of the tool calls earlier assistant turns made, in order."""
    return [c["id"] for m in messages if "tool_calls" in m for c in m["tool_calls"] or ()]


def needs(options: ChatOptions, messages: list[dict]) -> frozenset[str]:
    """What serving this request takes (names from :data:`CAPABILITIES`): tools when tools are offered or the
    conversation already holds tool calls, json_schema for a schema answer, vision for an image part."""
    out = set()
    if options.tools:
        out.add("tools")
    if options.response_kind == "json_schema":
        out.add("json_schema")
    for m in messages:
        if "tool_calls" in m or m.get("role") == "tool":
            out.add("tools")
        content = m.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            out.add("vision")
    return frozenset(out) if out else NOTHING


NOTHING: frozenset[str] = frozenset()


def assistant_message(text: str, tool_calls: Iterable[ToolCall]) -> dict[str, Any]:
    """The assistant turn to append to the conversation (OpenAI's shape: content None beside tool calls)."""
    calls = [c.to_openai() for c in tool_calls]
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def tool_calls_digest(text: str, tool_calls: Iterable[ToolCall]) -> str:
    """What an answer's hash covers: its text, and its tool calls (name and arguments) when it made any."""
    calls = [[c.name, c.arguments] for c in tool_calls]
    return json.dumps([text, calls], separators=(",", ":")) if calls else text
