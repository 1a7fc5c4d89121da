"""Strict policy parsing: unset variables, duplicate keys, no type coercion, size and alias limits.

Each of these was accepted before (a duplicate `min_tier` silently lowered a floor to 0, `tier: "2"` was
coerced, an alias bomb cost 16 s and 1.1 GB before it was rejected).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from toolkit.policy import MAX_POLICY_BYTES, PolicyError, load_policy


def write(tmp_path, text: str, name: str = "p.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def problems(path) -> list[str]:
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    return [str(p) for p in e.value.problems]


def test_unset_variable_is_an_error_naming_it_and_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("MY_LOCAL_URL", raising=False)
    p = write(tmp_path, """\
        models:
          a: {model: openai/gpt-4o-mini, tier: 1}
          local: {model: openai/gemma, tier: 0, boundary: local,
                  api_base: "${MY_LOCAL_URL}"}
        routes:
          private: {primary: local, boundary: local}
        """)
    [msg] = [m for m in problems(p) if "MY_LOCAL_URL" in m]
    assert f"{p}:4" in msg and "not set" in msg


def test_variable_with_a_default_needs_no_value(tmp_path, monkeypatch):
    monkeypatch.delenv("MY_LOCAL_URL", raising=False)
    p = write(tmp_path, """\
        models:
          local: {model: openai/gemma, tier: 0, boundary: local, api_base: "${MY_LOCAL_URL:-http://127.0.0.1:9/v1}"}
        routes:
          private: {primary: local, boundary: local}
        """)
    assert load_policy(p).models["local"].api_base == "http://127.0.0.1:9/v1"


def test_duplicate_keys_are_rejected_with_both_lines(tmp_path):
    p = write(tmp_path, """\
        models:
          a: {model: openai/gpt-4o-mini, tier: 1}
          b: {model: openai/gpt-4.1, tier: 3}
        routes:
          synthesis: {primary: b, min_tier: 3,
                      min_tier: 0}
        """)
    [msg] = problems(p)
    assert "min_tier" in msg and "duplicate key" in msg and ":5" in msg and "line 6" in msg


def test_duplicate_model_alias_is_rejected(tmp_path):
    p = write(tmp_path, """\
        models:
          a: {model: openai/gpt-4o-mini, tier: 1}
          a: {model: openai/gpt-4.1, tier: 3}
        routes:
          t: {primary: a}
        """)
    [msg] = problems(p)
    assert "duplicate key 'a'" in msg and ":2" in msg and "line 3" in msg


@pytest.mark.parametrize("value", ['"2"', "true", "2.0"])
def test_tier_is_never_coerced(tmp_path, value):
    p = write(tmp_path, f"""\
        models:
          a: {{model: openai/gpt-4o-mini, tier: {value}}}
        routes:
          t: {{primary: a}}
        """)
    [msg] = problems(p)
    assert f"{p}:2: models.a.tier" in msg


def test_lists_and_numbers_still_load(tmp_path):
    p = write(tmp_path, """\
        models:
          a: {model: openai/gpt-4o-mini, tier: 1, timeout_s: 5}
          b: {model: openai/gpt-4.1, tier: 3, price: {input_per_mtok: 2, output_per_mtok: 8.5}}
        routes:
          t: {primary: a, fallbacks: [b], allowed_regions: null}
        budgets:
          - {name: x, limit_usd: 5, alerts: [0.5, 1]}
        """)
    policy = load_policy(p)
    assert policy.routes["t"].fallbacks == ("b",) and policy.budgets[0].alerts == (0.5, 1.0)
    assert policy.models["a"].timeout_s == 5.0


@pytest.mark.timeout(60)
def test_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 7)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\nmodels: {}\nroutes: {}\n")
    [msg] = problems(p)
    assert "alias" in msg and "expand" in msg


def test_oversized_policy_is_refused_unread(tmp_path):
    p = tmp_path / "big.yaml"
    with open(p, "w") as f:
        f.write("models: {}\nroutes: {}\n# " + "x" * (MAX_POLICY_BYTES + 10) + "\n")
    [msg] = problems(p)
    assert "bytes" in msg and str(MAX_POLICY_BYTES) in msg.replace(",", "")


def test_policy_check_cli_names_duplicate_without_traceback(tmp_path):
    p = write(tmp_path, """\
        models:
          a: {model: openai/gpt-4o-mini, tier: 1}
        routes:
          t: {primary: a}
          t: {primary: a, min_tier: 0}
        """)
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "policy", "check", "--no-prices", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "duplicate key 't'" in r.stderr and "Traceback" not in r.stderr
