"""A local provider simulator: a real HTTP server on 127.0.0.1 for tests, demos and drills.

It answers any model name in each vendor's own protocol — request shape, answer
shape, usage field names, error bodies and streaming framing:

=========== ================================================================ ==========================
protocol    paths                                                            streaming
=========== ================================================================ ==========================
openai      POST /v1/chat/completions                                        SSE ``data:`` chunks
azure       POST /openai/deployments/{name}/chat/completions?api-version=…   SSE ``data:`` chunks
openrouter  POST /api/v1/chat/completions (reports ``usage.cost``)           SSE ``data:`` chunks
anthropic   POST /v1/messages                                                SSE ``event:`` + ``data:``
gemini      POST /v1beta/models/{model}:generateContent                      ``:streamGenerateContent?alt=sse``
bedrock     POST /model/{id}/converse                                        ``/converse-stream``, AWS event-stream
ollama      POST /api/chat                                                   NDJSON lines
=========== ================================================================ ==========================

Every model obeys one fault model (:class:`Behaviour`), whatever the protocol:
latency (log-normal), an error rate with a status (429 with Retry-After, 500,
503, 529 overloaded, or any 4xx), ``down`` (the connection closes with no
answer), ``timeout`` (no answer at all), ``empty`` (200 with no text) and one
``fault``: ``reset`` (TCP reset), ``html`` (200 with an HTML page),
``malformed`` (200 with broken JSON), ``cut_stream`` (the connection drops
after ``fault_after`` text pieces; a body not streamed stops half-way),
``stall_stream`` (the same, but the connection stays open and silent),
``context_window`` and ``content_policy`` (the vendor's own rejection), and ``bad_json`` (a structured answer
cut short, tool-call arguments that miss what their schema requires).

Every protocol speaks tools, streamed and not, in the vendor's own shapes (OpenAI ``tool_calls``, Anthropic
``tool_use`` / ``tool_result`` blocks, Gemini ``functionCall`` / ``functionResponse``, Bedrock ``toolUse`` /
``toolResult``, Ollama ``tools``): a request offering tools is answered with a call to the tool it names (else
the first) with arguments valid for its schema; one whose last message is a tool result gets text; a response
schema (or JSON mode) gets JSON valid for it (``answers``).  A cut or stalled stream counts argument pieces as
it counts text, so faults land mid tool call too.  Behaviour is set per model from a
behaviour file (``routekit sim serve --behaviours FILE``, :func:`load_behaviours`), or at run time::

    POST /_sim/models/{name}   {"down": true}          change one model
    POST /_sim/reset                                    back to the behaviour file, counters cleared
    GET  /_sim/stats                                    request counts per protocol and model
    GET  /_sim/usage                                    the last usage block sent, per protocol and model

Behaviour file (YAML)::

    default: {latency_ms: 20}
    models:
      claude-sonnet-4-6: {down: true}
      gpt-4o-mini: {error_rate: 0.2, error_status: 429, retry_after_s: 1}
      gemini-3.1-pro-preview: {cached_tokens: 40, reasoning_tokens: 12, skill: 0.9}
    answers:                  # an answer key: models with a skill answer a share of these prompts right
      "How do I add a second admin to our workspace?": how-to

:func:`fault_matrix` drives every fault through every protocol with litellm's real adapters and
routekit's transport (``routekit sim matrix``, docs/errors.md).

Model names are what the client puts on the wire: litellm strips its provider
prefix, so ``anthropic/claude-sonnet-4-6`` arrives as ``claude-sonnet-4-6``
(Azure: the deployment name; Bedrock: the model id, percent-decoded).

=================== =====================================================================================
module              what it holds
=================== =====================================================================================
``faults``          :class:`Behaviour` (the fault model), :class:`SimState`, :func:`load_behaviours`
``answers``         :class:`Call` (what a request asks), :class:`Answer` (vendor-neutral counts), the answer key
``schemas``         JSON values valid (or not) for a JSON schema: structured answers and tool arguments
``protocols``       one module per vendor with the same shape (:class:`WireProtocol`); ``PROTOCOL_HANDLERS``
``handling``        one request through the fault model, whatever its protocol
``matrix``          the fault matrix through litellm and the transport
``server``          the aiohttp app, :class:`SimServer` (background thread), :func:`serve` (foreground)
=================== =====================================================================================
"""
from __future__ import annotations

from .answers import Answer, Call
from .faults import FAULTS, Behaviour, Fault, SimState, load_behaviours
from .matrix import FAULT_CASES, NOT_APPLICABLE, PROVIDERS, Cell, fault_matrix, matrix_table
from .protocols import PROTOCOL_HANDLERS, PROTOCOLS, WireProtocol, event_frame, wire_request
from .server import SimServer, create_app, serve, stats_of

__all__ = ["FAULTS", "FAULT_CASES", "NOT_APPLICABLE", "PROTOCOLS", "PROTOCOL_HANDLERS", "PROVIDERS", "Answer",
           "Behaviour", "Call", "Cell", "Fault", "SimServer", "SimState", "WireProtocol", "create_app",
           "event_frame", "fault_matrix", "load_behaviours", "matrix_table", "serve", "stats_of", "wire_request"]
