"""Routing research: replay fixed policies over outcome tables (:mod:`.replay`, formulas in its docstring)
and train routers on them, offline (:mod:`.features`, :mod:`.routers`, :mod:`.evaluate`, :mod:`.calibrate`,
:mod:`.report`, :mod:`.emit`; the Router runs an emitted ``router:`` block through :mod:`.learned`, and
:mod:`.policy_replay` replays a whole policy file over a table).

``from toolkit.research import X`` keeps working for every public name of the replay module; the training
modules need the optional extra ``routekit[research]`` (scikit-learn, wordllama) and are imported on use."""
from __future__ import annotations

from .replay import (GSM8K_MODELS, DATASETS, REQUIRED, OutcomeTableError, Outcomes, Point, aiq, apgr,
                     cascade, choice_point, cpt, frontier_report, hull_quality,
                     import_routellm_gsm8k, import_routerarena, load_outcomes, ndch, oracle, pair_metrics, pgr,
                     random_mix, random_router_curve, read_table, single, static_routes, threshold_curve)

__all__ = ["GSM8K_MODELS", "DATASETS", "REQUIRED", "OutcomeTableError", "Outcomes", "Point", "aiq", "apgr",
           "cascade", "choice_point", "cpt", "frontier_report", "hull_quality",
           "import_routellm_gsm8k", "import_routerarena", "load_outcomes", "ndch", "oracle", "pair_metrics", "pgr",
           "random_mix", "random_router_curve", "read_table", "single", "static_routes", "threshold_curve"]
