"""The error matrix: 7 protocols x every simulated fault, called and streamed, through litellm's real
adapters and the transport, each landing on its documented taxonomy kind with one request."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from toolkit.sim import FAULT_CASES, NOT_APPLICABLE, PROVIDERS, fault_matrix, matrix_table
from toolkit.transport import KINDS, RETRYABLE

from .conftest import ROOT

# The contract, written out by hand (not read back from toolkit.sim): fault -> (kind, retryable).
EXPECTED = {
    "down": ("connection", True), "429 + Retry-After": ("rate_limited", True), "500": ("server_error", True),
    "503": ("server_error", True), "529 overloaded": ("overloaded", True), "timeout": ("timeout", True),
    "connection reset": ("connection", True), "empty answer": ("empty", True), "HTML body": ("malformed", True),
    "malformed JSON": ("malformed", True), "stream cut": ("connection", True), "stalled stream": ("timeout", True),
    "400": ("bad_request", False), "401": ("auth", False), "context window": ("context_window", False),
    "content filter": ("content_policy", False),
}


@pytest.fixture(scope="module")
def cells(sim):
    # 2 s, not the CLI's 0.5 s: the simulator shares this process's GIL with the whole test session, and a
    # fault that closes the connection must not read as a timeout because the server answered late.
    return fault_matrix(sim, timeout_s=2.0)


def test_every_cell_maps_to_its_kind_with_one_request(cells):
    assert set(FAULT_CASES) == set(EXPECTED)
    assert len(PROVIDERS) == 7
    assert len(cells) == len(EXPECTED) * 2 * 7 - 2 * len(NOT_APPLICABLE)
    wrong = [(c.protocol, c.fault, c.mode, c.kind, c.requests) for c in cells
             if (c.kind, c.retryable) != EXPECTED[c.fault] or c.requests != 1]
    assert wrong == []
    assert {c.kind for c in cells} <= set(KINDS) and {k for k, r in EXPECTED.values() if r} <= RETRYABLE


def test_retry_after_kept_and_status_only_when_answered(cells):
    for c in cells:
        assert c.retry_after_s == (7 if c.fault == "429 + Retry-After" else None), c
        if c.kind in ("connection", "timeout", "malformed"):
            assert c.status is None, c        # no HTTP answer (or none worth trusting) came back
        if c.fault in ("429 + Retry-After", "401", "400"):
            assert c.status == int(c.fault[:3]), c


def test_only_streams_broken_mid_answer_are_marked_after_first_token(cells):
    for c in cells:
        assert c.after_first_token == (c.mode == "stream" and c.fault in ("stream cut", "stalled stream")), c


def test_docs_carry_the_table(cells):
    doc = (ROOT / "docs" / "errors.md").read_text()
    block = re.search(r"<!-- sim-matrix:start -->\n(.*?)\n<!-- sim-matrix:end -->", doc, re.S)
    assert block and block.group(1) == matrix_table(cells), "regenerate: routekit sim matrix --write docs/errors.md"


def test_cli_help_teaches():
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "sim", "matrix", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "--write docs/errors.md" in r.stdout and "litellm" in r.stdout
