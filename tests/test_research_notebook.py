"""The routing_research notebook runs end to end through papermill on the real data."""
from __future__ import annotations

import json

import pytest

from toolkit import research

from .conftest import DATA, ROOT


def test_routing_research_notebook_runs_with_parameters(tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "routing_research.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "routing_research.ipynb"), str(out), cwd=str(tmp_path),
                               parameters={"verifier_error": 0.0, "cascade_thresholds": [1.0]},
                               kernel_name="python3", progress_bar=False)
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    charts = [o for o in outputs if "application/vnd.vegalite.v5+json" in o.get("data", {})
              or "Chart(...)" in "".join(o.get("data", {}).get("text/plain", ""))]
    assert len(charts) == 4   # two frontiers, then the trained routers' PGR curve and held-out frontier
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "1307 prompts after decontamination" in text and "809 prompts" in text
    assert ("trained routers: RouteLLM GSM8K / linear, RouteLLM GSM8K / mf, RouterArena / linear, "
            "RouterArena / multi") in text
    table = "".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "RouterArena / multi" in table and "zero-router AIQ" in table
    # a perfect verifier cascade reaches the oracle's quality: the notebook's AIQ reflects it
    o = research.load_outcomes(DATA / "outcomes" / "routellm-gsm8k.csv")
    pts = [research.cascade(o, threshold=1.0)]
    expected = research.frontier_report(o, pts + research.random_router_curve(
        o, "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1") + research.threshold_curve(
        o, o.per_prompt("output_tokens"), "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"))["aiq"]
    assert f"AIQ of the evaluated policies {expected:.4f}" in text
