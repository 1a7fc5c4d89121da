"""The privacy boundary, proved at load and at call.

Before: a `boundary: local` model whose api_base was an unset `${VAR}` loaded cleanly, its api_base became
empty, and litellm sent the private prompt to the vendor's default public endpoint.  Here every test runs
under a guard that refuses (and counts) every connection or name lookup that is not loopback.
"""
from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.policy import ModelSpec, PolicyError, is_local_endpoint, load_policy
from toolkit.router import NoEligibleRoute, RequestError, Router
from toolkit.transport import LiteLLMTransport, TransportError

from .netguard import refuse_non_loopback


def write(tmp_path, text: str):
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_unset_local_url_never_reaches_a_vendor(tmp_path, monkeypatch, log_dir):
    """The finding itself: it must not load, and nothing leaves the machine."""
    monkeypatch.delenv("MY_LOCAL_URL", raising=False)
    p = write(tmp_path, """\
        models:
          local: {model: openai/gemma-3-270m, tier: 0, boundary: local, api_base: "${MY_LOCAL_URL}",
                  price: {input_per_mtok: 0, output_per_mtok: 0}}
        routes:
          private: {primary: local, boundary: local}
        """)
    with refuse_non_loopback() as guard:
        with pytest.raises(PolicyError) as e:
            Router(p, log=log_dir).complete("private", "payroll of employee 7")
    assert "MY_LOCAL_URL" in str(e.value)
    assert guard.refused == []


@pytest.mark.parametrize("api_base, local_hosts, ok", [
    ("http://127.0.0.1:8089/v1", [], True),
    ("http://localhost:8089", [], True),
    ("http://[::1]:8089/v1", [], True),
    ("http://10.1.2.3:8000/v1", [], True),
    ("http://192.168.1.5", [], True),
    ("http://172.16.0.1:80", [], True),
    ("http://169.254.10.1:80", [], True),
    ("unix:///run/llm.sock", [], True),
    ("http://gpu-box.internal:8000/v1", ["gpu-box.internal"], True),
    ("http://gpu-box.internal:8000/v1", [], False),
    (None, [], False),
    ("", [], False),
    ("https://api.openai.com/v1", [], False),
    ("http://8.8.8.8/v1", [], False),
    ("http://127.0.0.1.nip.io/v1", [], False),
    ("http://127.0.0.1@evil.example/v1", [], False),
    ("http://0.0.0.0:8089", [], False),
])
def test_a_local_model_needs_an_explicit_local_endpoint(tmp_path, api_base, local_hosts, ok):
    base = "" if api_base is None else f', api_base: "{api_base}"'
    p = write(tmp_path, f"""\
        local_hosts: {local_hosts}
        models:
          local: {{model: openai/gemma, tier: 0, boundary: local{base}}}
        routes:
          private: {{primary: local, boundary: local}}
        """)
    if ok:
        assert load_policy(p).models["local"].api_base == api_base
        return
    with pytest.raises(PolicyError) as e:
        load_policy(p)
    [msg] = [str(x) for x in e.value.problems]
    assert f"{p}:3: models.local" in msg and "local" in msg


def test_endpoint_params_cannot_move_a_model(tmp_path):
    p = write(tmp_path, """\
        models:
          local: {model: openai/gemma, tier: 0, boundary: local, api_base: "http://127.0.0.1:9/v1",
                  params: {base_url: "https://api.openai.com/v1"}}
        routes:
          private: {primary: local, boundary: local}
        """)
    with pytest.raises(PolicyError) as e:
        load_policy(p)
    assert "base_url" in str(e.value) and "api_base" in str(e.value)


@pytest.mark.parametrize("api_base", [None, "", "https://api.openai.com/v1", "http://gpu.example.com/v1"])
def test_transport_refuses_a_local_model_with_a_non_local_endpoint(api_base):
    """The second proof: even a spec that escaped the load-time check is never sent anywhere."""
    spec = ModelSpec.model_construct(alias="local", model="openai/gemma", tier=0, boundary="local",
                                     api_base=api_base, api_key_env=None, api_version=None, params={},
                                     timeout_s=5.0, max_output_tokens=None, tool=None)
    transport = LiteLLMTransport()
    with refuse_non_loopback() as guard:
        for call in (lambda: transport.complete(spec, [{"role": "user", "content": "secret"}]),
                     lambda: list(transport.stream(spec, [{"role": "user", "content": "secret"}]))):
            with pytest.raises(TransportError) as e:
                call()
            assert e.value.kind == "boundary" and not e.value.retryable
    assert guard.refused == []


def test_is_local_endpoint():
    assert is_local_endpoint("http://127.0.0.2:1/v1") and is_local_endpoint("unix:///tmp/x.sock")
    assert not is_local_endpoint("http://example.com") and not is_local_endpoint(None)
    assert is_local_endpoint("http://box:1", local_hosts=("box",))


# --- the property: no request for a local intent ever leaves loopback --------------------------------

ENDPOINTS = st.sampled_from([
    "${ROUTEKIT_TEST_UNSET}", "${ROUTEKIT_TEST_EMPTY}", "${ROUTEKIT_TEST_PUBLIC}", "https://api.openai.com/v1",
    "http://93.184.216.34/v1", "http://llm.example.com:8080/v1", "${ROUTEKIT_SIM_URL}/v1",
    "${ROUTEKIT_TEST_UNSET:-${ROUTEKIT_SIM_URL}}/v1", None, "",
])
PREFIXES = st.sampled_from(["openai", "ollama_chat", "anthropic", "gemini", "azure"])


@st.composite
def local_policies(draw):
    n = draw(st.integers(1, 3))
    models, chain = [], []
    for i in range(n):
        endpoint = draw(ENDPOINTS)
        prefix = draw(PREFIXES)
        base = "" if endpoint is None else f', api_base: "{endpoint}"'
        boundary = draw(st.sampled_from(["local", "local", "vendor"]))
        extra = ', api_version: "2024-10-21"' if prefix == "azure" else ""
        models.append(f"  m{i}: {{model: {prefix}/gpt-4o-mini, tier: 1, boundary: {boundary}{base}{extra}, "
                      f"price: {{input_per_mtok: 0, output_per_mtok: 0}}}}")
        chain.append(f"m{i}")
    route_boundary = draw(st.sampled_from(["local", None]))
    rb = f", boundary: {route_boundary}" if route_boundary else ""
    fallbacks = ", ".join(chain[1:])
    sensitivity = "private" if route_boundary is None else draw(st.sampled_from([None, "private"]))
    text = "models:\n" + "\n".join(models) + f"\nroutes:\n  secret: {{primary: {chain[0]}, fallbacks: [{fallbacks}]{rb}}}\n"
    return text, sensitivity


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=local_policies())
def test_property_local_intents_never_leave_loopback(case, sim_env, tmp_path_factory, monkeypatch):
    text, sensitivity = case
    monkeypatch.delenv("ROUTEKIT_TEST_UNSET", raising=False)
    monkeypatch.setenv("ROUTEKIT_TEST_EMPTY", "")
    monkeypatch.setenv("ROUTEKIT_TEST_PUBLIC", "https://api.openai.com")
    d = tmp_path_factory.mktemp("prop")
    p = d / "p.yaml"
    p.write_text(text)
    sim_env.state.stats.clear()
    with refuse_non_loopback() as guard:
        try:
            router = Router(p, log=d / "log")
        except PolicyError:
            return  # refused at load: nothing could be sent
        try:
            record = router.complete("secret", "payroll of employee 7", sensitivity=sensitivity).record
        except NoEligibleRoute as e:
            record = e.record
    assert guard.refused == [], f"left loopback: {guard.refused}\n{text}"
    # every attempt went to a model the policy declares local; the simulator saw no more requests than that
    tried = [a["alias"] for a in record["attempts"]]
    assert all(router.policy.models[a].effective_boundary == "local" for a in tried), text
    assert sum(sim_env.state.stats.values()) <= len(tried), text


@pytest.mark.parametrize("label", ["Private", "privat", "private ", "confidential"])
def test_a_sensitivity_the_policy_does_not_declare_is_refused_before_any_call(label, sim_env, policy_copy, log_dir):
    """Before: a label the policy's `sensitivity:` map does not know (a typo of "private") asked for no boundary,
    and the request went to the route's vendors."""
    router = Router(policy_copy, log=log_dir)
    sim_env.state.stats.clear()
    with refuse_non_loopback(), pytest.raises(RequestError) as e:
        router.complete("triage", "payroll of employee 7", sensitivity=label)
    assert f"unknown sensitivity {label!r}" in str(e.value) and "private (local)" in str(e.value)
    assert sum(sim_env.state.stats.values()) == 0


def test_a_declared_sensitivity_routes_by_its_boundary(sim_env, tmp_path, log_dir):
    p = write(tmp_path, """\
        models:
          cheap: {model: openai/gpt-4o-mini, tier: 1, api_base: "${ROUTEKIT_SIM_URL}/v1",
                  price: {input_per_mtok: 1, output_per_mtok: 2}}
        routes:
          triage: {primary: cheap}
        sensitivity: {private: local, public: vendor}
        """)
    router = Router(p, log=log_dir)
    assert router.complete("triage", "hello", sensitivity="public").served_model == "cheap"
    with pytest.raises(NoEligibleRoute):   # no local model in this chain: refused, not sent to the vendor
        router.complete("triage", "hello", sensitivity="private")
