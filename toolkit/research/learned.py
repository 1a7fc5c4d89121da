"""A trained router inside a policy: the ``router:`` block of a route, as the Router and the replay run it.

``routekit research train ... --emit-policy`` writes the block when the learned router beat the per-intent
lookup table on held-out prompts::

    routes:
      math:
        primary: gpt-4-1106-preview
        fallbacks: [mixtral-8x7b-instruct-v0.1]
        router:
          name: routellm-gsm8k-linear-tfidf
          version: 3f2a9c1b7e0d              # sha256 of the model file, first 12 hex digits
          file: routers/routellm-gsm8k-linear-tfidf/3f2a9c1b7e0d.npz   # relative to the policy file
          models: [gpt-4-1106-preview, mixtral-8x7b-instruct-v0.1]      # aliases, in the file's order
          threshold: 0.0412                  # pair rule: models[0] when predicted gain >= threshold
          # or cost_weight: 812.5            # cost rule: argmax predicted score - cost_weight * mean cost

Per request the router reads the text of the last user message, computes the file's features and predicted
values, picks one alias by the rule, and that alias goes first in the route's chain (the others keep their
fallback order).  The route record names the router, its version and the score it gave (``router_name``,
``router_version``, ``router_score``: the predicted gain for the pair rule, the chosen model's predicted
score minus the cost term for the cost rule).  Nothing is downloaded: the file holds every number
(``allow_pickle=False``), the features are TF-IDF or the embeddings shipped in the ``wordllama`` wheel.

:func:`choose` is the Router's one entry point; :func:`choose_texts` the same for many prompts (replay);
:func:`problems` what ``routekit policy check`` reports about a block.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import LearnedRouterError

FORMAT = "routekit-router/1"


@dataclass(frozen=True)
class Choice:
    alias: str
    name: str
    version: str
    score: float


# --- the model file -----------------------------------------------------------------------------------------------


def model_bytes(meta: dict, arrays: dict[str, Any]) -> bytes:
    """A model file's bytes: a zip of .npy arrays (numpy's .npz layout) plus ``meta`` as JSON, written with
    fixed timestamps so the same router gives the same bytes, and so the same version."""
    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in {"meta": np.array(json.dumps(meta, sort_keys=True)), **arrays}.items():
            item = io.BytesIO()
            np.lib.format.write_array(item, np.asarray(value), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), item.getvalue(),
                       zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def model_file(spec: Any, policy_path: str) -> Path:
    return Path(policy_path).resolve().parent / spec.file


def read_model(path: Path, version: str) -> tuple[dict, dict[str, Any]]:
    """The meta and arrays of a model file, checked against the version the policy names."""
    import numpy as np

    try:
        data = path.read_bytes()
    except OSError as e:
        raise LearnedRouterError(f"router file {path}: {e.strerror}") from None
    if version_of(data) != version:
        raise LearnedRouterError(f"router file {path} is version {version_of(data)}, the policy names {version} "
                                 f"(the file changed since the policy was written)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (ValueError, OSError, zipfile.BadZipFile, KeyError) as e:
        raise LearnedRouterError(f"router file {path}: not a routekit router file ({e})") from None
    if meta.get("format") != FORMAT:
        raise LearnedRouterError(f"router file {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta, arrays


class LoadedRouter:
    """A model file, ready to predict: features and predictor rebuilt from its arrays."""

    def __init__(self, meta: dict, arrays: dict[str, Any]):
        from .features import Embed, Tfidf
        from .routers import PREDICTORS, Rule

        self.meta = meta
        part = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}  # noqa: E731
        kind = meta["features"]["kind"]
        self.features = (Tfidf if kind == "tfidf" else Embed).from_state(part("feat."))
        self.predictor = PREDICTORS[meta["predictor"]].from_arrays(part("model."))
        self.mean_cost = arrays["mean_cost"]
        n = len(meta["models"])
        self.rule = Rule(meta["rule"], tuple(range(n)))

    def decide(self, texts: list[str], spec: Any) -> list[tuple[int, float]]:
        """(model index, score) per text under the block's threshold or cost weight."""
        import numpy as np

        values = self.predictor.predict(self.features.transform(texts))
        if self.rule.kind == "pair":
            gain = self.rule.gain(values)
            return [(int(c), float(g)) for c, g in zip(self.rule.choose(values, self.mean_cost, spec.threshold), gain)]
        chosen = self.rule.choose(values, self.mean_cost, spec.cost_weight)
        util = values - spec.cost_weight * self.mean_cost
        return [(int(c), float(u)) for c, u in zip(chosen, util[np.arange(len(chosen)), chosen])]


@lru_cache(maxsize=16)
def _load(path: str, version: str) -> LoadedRouter:
    return LoadedRouter(*read_model(Path(path), version))


def load(spec: Any, policy_path: str) -> LoadedRouter:
    return _load(str(model_file(spec, policy_path)), spec.version)


# --- choosing ----------------------------------------------------------------------------------------------------


def prompt_text(messages: list[dict]) -> str:
    """What the router reads: the last user message's text (content parts joined), else every message's."""
    def text(m: dict) -> str:
        c = m.get("content")
        if isinstance(c, list):
            return " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
        return str(c or "")

    users = [m for m in messages if m.get("role") == "user"]
    return text(users[-1]) if users else " ".join(text(m) for m in messages)


def choose_texts(spec: Any, policy_path: str, texts: list[str]) -> list[Choice]:
    router = load(spec, policy_path)
    return [Choice(spec.models[c], spec.name, spec.version, s) for c, s in router.decide(texts, spec)]


def choose(spec: Any, policy_path: str, messages: list[dict]) -> Choice:
    """The Router's entry point: which alias serves this request first, and the score that decided it."""
    return choose_texts(spec, policy_path, [prompt_text(messages)])[0]


# --- policy check -------------------------------------------------------------------------------------------------


def policy_problems(policy: Any) -> list[Any]:
    """Every problem of every ``router:`` block of a policy (its model file, its aliases), located in the file.
    Checked by the Router when it loads the policy, and by ``routekit policy check``."""
    return [policy.problem(("routes", intent, "router", *key), message)
            for intent, route in policy.routes.items() if route.router is not None
            for key, message in problems(route.router, policy.path, policy.chain(intent), policy.models)]


def problems(spec: Any, policy_path: str, chain: list[str], aliases: Any) -> list[tuple[tuple, str]]:
    """What is wrong with a ``router:`` block, as (key path under the block, message)."""
    from .features import extra_missing

    out: list[tuple[tuple, str]] = []
    for i, alias in enumerate(spec.models):
        if alias not in aliases:
            out.append((("models", i), f"unknown model alias {alias!r}"))
        elif alias not in chain:
            out.append((("models", i), f"{alias!r} is not a candidate of this route (primary or fallbacks)"))
    path = model_file(spec, policy_path)
    try:
        meta, _ = read_model(path, spec.version)
    except LearnedRouterError as e:
        return out + [(("file",), str(e))]
    if len(meta["models"]) != len(spec.models):
        out.append((("models",), f"the router file was trained on {len(meta['models'])} models "
                                 f"({', '.join(meta['models'])}); the block lists {len(spec.models)}"))
    if (meta["rule"] == "pair") != (spec.threshold is not None):
        out.append(((), f"the router file uses the {meta['rule']} rule: give "
                        f"{'threshold' if meta['rule'] == 'pair' else 'cost_weight'}"))
    missing = extra_missing(meta["features"]["kind"])
    if missing:
        out.append(((), f"the router needs {missing}"))
    return out
