"""Policy loading: valid files load; each kind of bad file gets a clear, located message."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from toolkit.policy import PolicyError, load_policy

from .conftest import DATA

GOOD = """\
models:
  a: {model: openai/gpt-4o-mini, tier: 1}
  b: {model: anthropic/claude-haiku-4-5, tier: 2}
  local: {model: openai/gemma-3-270m, api_base: "http://127.0.0.1:8089/v1", tier: 0, boundary: local,
          price: {input_per_mtok: 0, output_per_mtok: 0}}
routes:
  triage: {primary: a, fallbacks: [b], min_tier: 1}
  private: {primary: local, boundary: local}
"""


def write(tmp_path, text: str):
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def problems(tmp_path, text: str, **kw) -> list[str]:
    with pytest.raises(PolicyError) as e:
        load_policy(write(tmp_path, text), **kw)
    return [str(p) for p in e.value.problems]


def test_shipped_policies_are_clean():
    for name in ("policy.demo.yaml", "policy.example.yaml"):
        p = load_policy(DATA / name, check_prices=True)
        assert {"triage", "extraction", "synthesis", "code", "review", "private"} <= set(p.routes)


def test_good_policy_loads_with_chain_and_version(tmp_path):
    p = load_policy(write(tmp_path, GOOD))
    assert p.chain("triage") == ["a", "b"]
    assert len(p.version) == 12
    assert p.models["local"].effective_boundary == "local"


BAD = {
    "unknown alias": (GOOD.replace("fallbacks: [b]", "fallbacks: [zzz]"), "unknown model alias 'zzz'", 7),
    "missing tier": (GOOD.replace("a: {model: openai/gpt-4o-mini, tier: 1}", "a: {model: openai/gpt-4o-mini}"),
                     "models.a.tier: required key is missing", 2),
    "typo key": (GOOD.replace("min_tier: 1}", "min_teir: 1}"), "routes.triage.min_teir: unknown key", 7),
    "bad tier type": (GOOD.replace("tier: 2}", "tier: high}"), "models.b.tier", 3),
    "bad on_exhausted": (GOOD.replace("min_tier: 1}", "min_tier: 1, on_exhausted: pray}"), "on_exhausted", 7),
    "no routes": ("models:\n  a: {model: openai/gpt-4o-mini, tier: 1}\n", "routes: required key is missing", None),
    "not a mapping": ("- just\n- a list\n", "expected a mapping", 1),
    "invalid yaml": ("models: {a: [unclosed\n", "not valid YAML", None),
    "both model and tool": (GOOD.replace("a: {model: openai/gpt-4o-mini, tier: 1}",
                                         "a: {model: openai/gpt-4o-mini, tool: 'x.y:z', tier: 1}"),
                            "exactly one of 'model'", 2),
    "literal secret": (GOOD.replace("tier: 2}", "tier: 2, api_key: sk-ant-abcdefghijklmnopqrstuvwxyz123}"),
                       "looks like a literal secret", 3),
    "key in env name": (GOOD.replace("tier: 2}", "tier: 2, api_key_env: sk-abcdefghijklmnopqrstuvwx}"),
                        "literal secret", 3),
    "boundary violation": (GOOD.replace("private: {primary: local, boundary: local}",
                                        "private: {primary: local, fallbacks: [b], boundary: local}"),
                           "route 'private' has boundary 'local' but model 'b'", 8),
    "cycle": (GOOD + "  x: {primary: a, fallbacks: ['route:y']}\n  y: {primary: b, fallbacks: ['route:x']}\n",
              "cycle", 9),
    "unreachable floor": (GOOD.replace("min_tier: 1}", "min_tier: 5}"), "can never serve", 7),
    "region allow-list": (GOOD.replace("min_tier: 1}", "min_tier: 1, allowed_regions: [eu]}"),
                          "allows regions ['eu'] but model 'a'", 7),
    "negative price": (GOOD.replace("input_per_mtok: 0,", "input_per_mtok: -1,"), "input_per_mtok", 5),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_policy_names_the_problem(tmp_path, kind):
    text, expected, line = BAD[kind]
    found = problems(tmp_path, text)
    assert any(expected in p for p in found), found
    if line is not None:
        assert any(f"p.yaml:{line}:" in p for p in found if expected in p), found


def test_secret_value_is_never_repeated(tmp_path):
    secret = "sk-ant-abcdefghijklmnopqrstuvwxyz123"
    found = problems(tmp_path, GOOD.replace("tier: 2}", f"tier: 2, api_key: {secret}}}"))
    assert secret not in "\n".join(found)


def test_missing_price_is_reported(tmp_path):
    text = GOOD.replace("b: {model: anthropic/claude-haiku-4-5, tier: 2}", "b: {model: openai/made-up-model-9, tier: 2}")
    found = problems(tmp_path, text, check_prices=True)
    assert any("made-up-model-9" in p and "price snapshot" in p for p in found)
    load_policy(write(tmp_path, text))  # without the price check it loads


def test_env_substitution(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMURL", "http://127.0.0.1:9999")
    p = load_policy(write(tmp_path, GOOD.replace('"http://127.0.0.1:8089/v1"', '"${SIMURL}/v1"')))
    assert p.models["local"].api_base == "http://127.0.0.1:9999/v1"
    p = load_policy(write(tmp_path, GOOD.replace('"http://127.0.0.1:8089/v1"', '"${NOPE_UNSET:-http://127.0.0.2:1}/v1"')))
    assert p.models["local"].api_base == "http://127.0.0.2:1/v1"


@pytest.mark.parametrize("kind", ["unknown alias", "literal secret", "invalid yaml", "cycle"])
def test_cli_check_fails_without_traceback(tmp_path, kind):
    path = write(tmp_path, BAD[kind][0])
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "policy", "check", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert BAD[kind][1] in r.stderr


def test_cli_check_ok_summary():
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "policy", "check", str(DATA / "policy.demo.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout and "synthesis" in r.stdout and "below floor" in r.stdout
    assert len(r.stdout.splitlines()) < 40  # one screen


def test_cli_missing_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "policy", "check", str(tmp_path / "nope.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "cannot read policy file" in r.stderr and "Traceback" not in r.stderr
