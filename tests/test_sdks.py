"""The vendors' own SDKs parse the simulator's answers: tool calls (whole and streamed), tool results answered with
text, structured output and errors — openai (OpenAI, Azure, OpenRouter), anthropic, google-genai, boto3 (Bedrock
Converse).  The SDKs come with ``pip install 'routekit[sdks]'``."""
from __future__ import annotations

import json

import jsonschema
import pytest

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
           "required": ["city", "days"]}
LABEL = {"type": "object", "properties": {"label": {"type": "string", "enum": ["billing", "bug"]}},
         "required": ["label"], "additionalProperties": False}
ASK = "What is the weather in Paris?"


# --- OpenAI, Azure OpenAI, OpenRouter (the openai SDK) -----------------------------------------------------------

OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]


def openai_clients(sim):
    openai = pytest.importorskip("openai")
    return {"openai": (openai.OpenAI(base_url=sim.url + "/v1", api_key="x", max_retries=0), "gpt-4o-mini"),
            "azure": (openai.AzureOpenAI(azure_endpoint=sim.url, api_key="x", api_version="2024-10-21",
                                         max_retries=0), "gpt-4.1-mini"),
            "openrouter": (openai.OpenAI(base_url=sim.url + "/api/v1", api_key="x", max_retries=0),
                           "meta-llama/llama-3.3-70b-instruct")}


@pytest.mark.parametrize("vendor", ["openai", "azure", "openrouter"])
def test_openai_sdk_parses_tool_calls_streams_and_structured_output(sim_env, vendor):
    from openai.types.chat import ChatCompletion

    client, model = openai_clients(sim_env)[vendor]
    ask = [{"role": "user", "content": ASK}]
    r = client.chat.completions.create(model=model, messages=ask, tools=OPENAI_TOOLS)
    assert isinstance(r, ChatCompletion) and r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)

    pieces, finish = [], None
    for chunk in client.chat.completions.create(model=model, messages=ask, tools=OPENAI_TOOLS, stream=True,
                                                stream_options={"include_usage": True}):
        for choice in chunk.choices:
            pieces += [c.function.arguments or "" for c in choice.delta.tool_calls or ()]
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    jsonschema.validate(json.loads("".join(pieces)), WEATHER)

    follow = ask + [r.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    text = client.chat.completions.create(model=model, messages=follow, tools=OPENAI_TOOLS)
    assert text.choices[0].message.tool_calls is None and "sunny" in text.choices[0].message.content

    fmt = {"type": "json_schema", "json_schema": {"name": "label", "schema": LABEL, "strict": True}}
    shaped = client.chat.completions.create(model=model, messages=ask, response_format=fmt)
    jsonschema.validate(json.loads(shaped.choices[0].message.content), LABEL)


def test_openai_sdk_reads_a_rate_limit(sim_env):
    openai = pytest.importorskip("openai")
    client, model = openai_clients(sim_env)["openai"]
    sim_env.state.set(model, {"error_rate": 1.0, "error_status": 429, "retry_after_s": 3})
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert e.value.response.headers["retry-after"] == "3"


# --- Anthropic ---------------------------------------------------------------------------------------------------


def test_anthropic_sdk_parses_tool_use_streams_and_tool_results(sim_env):
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=sim_env.url, api_key="x", max_retries=0)
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
    ask = [{"role": "user", "content": ASK}]
    m = client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=ask, tools=tools)
    assert m.stop_reason == "tool_use"
    [use] = [b for b in m.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER)

    with client.messages.stream(model="claude-haiku-4-5", max_tokens=200, messages=ask, tools=tools,
                                tool_choice={"type": "tool", "name": "get_weather"}) as stream:
        final = stream.get_final_message()
    [streamed] = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use" and streamed.name == "get_weather"
    jsonschema.validate(streamed.input, WEATHER)   # the SDK assembled it from the input_json_delta pieces

    follow = ask + [{"role": "assistant", "content": [use.model_dump()]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}]
    answer = client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=follow, tools=tools)
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"


def test_anthropic_sdk_reads_overloaded(sim_env):
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=sim_env.url, api_key="x", max_retries=0)
    sim_env.state.set("claude-haiku-4-5", {"error_rate": 1.0, "error_status": 529})
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 529 and "overloaded" in str(e.value).lower()


# --- Google Gemini (google-genai) --------------------------------------------------------------------------------


def gemini_client(sim):
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    return genai.Client(api_key="x", http_options=types.HttpOptions(base_url=sim.url, api_version="v1beta")), types


def test_google_genai_parses_function_calls_streams_and_structured_output(sim_env):
    client, types = gemini_client(sim_env)
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", description="Weather", parameters_json_schema=WEATHER)])
    config = types.GenerateContentConfig(tools=[tool])
    r = client.models.generate_content(model="gemini-2.5-flash-lite", contents=ASK, config=config)
    [call] = r.function_calls
    assert call.name == "get_weather"
    jsonschema.validate(call.args, WEATHER)

    streamed = [c for chunk in client.models.generate_content_stream(model="gemini-2.5-flash-lite", contents=ASK,
                                                                     config=config)
                for c in chunk.function_calls or ()]
    assert [c.name for c in streamed] == ["get_weather"]

    follow = [types.Content(role="user", parts=[types.Part(text=ASK)]),
              r.candidates[0].content,
              types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather",
                                                                                  response={"result": "sunny"})])]
    answer = client.models.generate_content(model="gemini-2.5-flash-lite", contents=follow, config=config)
    assert answer.function_calls is None and answer.text

    shaped = client.models.generate_content(
        model="gemini-2.5-flash-lite", contents=ASK,
        config=types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=LABEL))
    jsonschema.validate(json.loads(shaped.text), LABEL)


def test_google_genai_reads_resource_exhausted(sim_env):
    client, _ = gemini_client(sim_env)
    from google.genai import errors

    sim_env.state.set("gemini-2.5-flash-lite", {"error_rate": 1.0, "error_status": 429})
    with pytest.raises(errors.ClientError) as e:
        client.models.generate_content(model="gemini-2.5-flash-lite", contents="x")
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"


# --- AWS Bedrock Converse (boto3) --------------------------------------------------------------------------------

BEDROCK_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def bedrock_client(sim):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    return boto3.client("bedrock-runtime", endpoint_url=sim.url, region_name="eu-central-1",
                        aws_access_key_id="x", aws_secret_access_key="y",
                        config=Config(retries={"max_attempts": 1}))


def test_boto3_converse_parses_tool_use_the_event_stream_and_tool_results(sim_env):
    client = bedrock_client(sim_env)
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather",
                                     "inputSchema": {"json": WEATHER}}}]}
    ask = [{"role": "user", "content": [{"text": ASK}]}]
    r = client.converse(modelId=BEDROCK_MODEL, messages=ask, toolConfig=tools)
    assert r["stopReason"] == "tool_use"
    [use] = [b["toolUse"] for b in r["output"]["message"]["content"] if "toolUse" in b]
    assert use["name"] == "get_weather"
    jsonschema.validate(use["input"], WEATHER)

    events = list(client.converse_stream(modelId=BEDROCK_MODEL, messages=ask, toolConfig=tools)["stream"])
    start = next(e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e)
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
              if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})]
    stop = next(e["messageStop"]["stopReason"] for e in events if "messageStop" in e)
    assert start["name"] == "get_weather" and stop == "tool_use"
    jsonschema.validate(json.loads("".join(pieces)), WEATHER)

    follow = ask + [r["output"]["message"],
                    {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"],
                                                                 "content": [{"text": "sunny"}]}}]}]
    answer = client.converse(modelId=BEDROCK_MODEL, messages=follow, toolConfig=tools)
    assert answer["stopReason"] == "end_turn" and answer["output"]["message"]["content"][0]["text"]


def test_boto3_reads_throttling(sim_env):
    client = bedrock_client(sim_env)
    sim_env.state.set(BEDROCK_MODEL, {"error_rate": 1.0, "error_status": 429})
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId=BEDROCK_MODEL, messages=[{"role": "user", "content": [{"text": "x"}]}])
