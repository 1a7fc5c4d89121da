"""Trained routers: small score predictors with ``fit(X, scores)`` / ``predict(X)``, and the decision rules.

Every predictor learns, from prompt features ``X`` (n x d, sparse or dense) and the outcome scores
(n x m, one column per model), a per-prompt, per-model value ``predict(X)`` (n x m) whose *differences*
rank the models on that prompt:

* :class:`RidgeScores` — ridge regression of each model's score (alpha 1: the features are L2-normalised
  rows, so one fixed strength suits both kinds; leave-one-out selection cost ~1 s a fit and is not done).  For a strong/weak pair the difference of its two columns is exactly the ridge
  regression of ``score_strong - score_weak``: the linear *win predictor*.
* :class:`KnnScores` — the mean scores of the k nearest training prompts (cosine distance).
* :class:`MatrixFactorization` — RouteLLM's ``mf`` router (Ong et al., 2024): a model embedding
  ``P_m`` and a projection ``W`` of the prompt's features, value ``s(m, q) = P_m . (W x_q)``, trained on
  every (prompt, better model, worse model) of the table with the logistic loss of
  ``P(i beats j | q) = sigmoid(s(i, q) - s(j, q))`` (full-batch Adam, seeded).  Ties carry no preference and,
  as in RouteLLM, are left out (training on them as 1/2 was tried: GSM8K APGR fell from 0.63 to 0.57).

Decision rules (:class:`Rule`):

* pair — ``w = value(strong) - value(weak)``; the strong model when ``w >= threshold``.  Sweeping the
  threshold over the quantiles of ``w`` gives RouteLLM's curve (APGR, CPT).
* score - lambda * cost — per prompt the model maximising ``value(m) - lambda * cost_m`` (``cost_m`` its
  mean cost per request on the training prompts); sweeping lambda from 0 up traces a cost-quality frontier.

Model files store each predictor's arrays (:meth:`arrays` / :meth:`from_arrays`): numbers only, read back with
``allow_pickle=False``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .features import require
from .replay import Outcomes, Point, choice_point, threshold_curve

ROUTERS = ("linear", "knn", "mf", "multi")   # multi = RidgeScores under the score - lambda * cost rule
PAIR_ROUTERS = ("linear", "knn", "mf")


class RidgeScores:
    name = "ridge"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha
        self.coef: Any = None        # m x d
        self.intercept: Any = None   # m

    def fit(self, X: Any, scores: Any) -> "RidgeScores":
        linear_model = require("sklearn.linear_model")
        fit = linear_model.Ridge(alpha=self.alpha).fit(X, scores)
        self.coef, self.intercept = fit.coef_, fit.intercept_
        return self

    def predict(self, X: Any) -> Any:
        import numpy as np

        return np.asarray(X @ self.coef.T) + self.intercept

    def arrays(self) -> dict[str, Any]:
        return {"coef": self.coef, "intercept": self.intercept}

    @classmethod
    def from_arrays(cls, a: dict[str, Any]) -> "RidgeScores":
        self = cls()
        self.coef, self.intercept = a["coef"], a["intercept"]
        return self


class KnnScores:
    name = "knn"

    def __init__(self, k: int = 25):
        self.k = k
        self.X: Any = None
        self.scores: Any = None
        self._nn: Any = None

    def fit(self, X: Any, scores: Any) -> "KnnScores":
        import numpy as np

        self.X, self.scores = X, np.asarray(scores, dtype=float)
        self._nn = None
        return self

    def predict(self, X: Any) -> Any:
        import numpy as np

        if self._nn is None:
            neighbors = require("sklearn.neighbors")
            self._nn = neighbors.NearestNeighbors(metric="cosine", algorithm="brute").fit(self.X)
        k = min(self.k, self.scores.shape[0])
        _, idx = self._nn.kneighbors(X, n_neighbors=k)
        return np.asarray(self.scores[idx].mean(axis=1))

    def arrays(self) -> dict[str, Any]:
        import numpy as np

        out = {"scores": self.scores, "k": np.array(self.k)}
        if hasattr(self.X, "tocsr"):
            X = self.X.tocsr()
            out.update(X_data=X.data, X_indices=X.indices, X_indptr=X.indptr, X_shape=np.array(X.shape))
        else:
            out["X"] = np.asarray(self.X)
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, Any]) -> "KnnScores":
        self = cls(int(a["k"]))
        if "X" in a:
            X = a["X"]
        else:
            sparse = require("scipy.sparse")
            X = sparse.csr_matrix((a["X_data"], a["X_indices"], a["X_indptr"]), shape=tuple(a["X_shape"]))
        return self.fit(X, a["scores"])


class MatrixFactorization:
    name = "mf"

    def __init__(self, dim: int = 16, epochs: int = 300, lr: float = 0.02, l2: float = 1e-4, seed: int = 0):
        self.dim, self.epochs, self.lr, self.l2, self.seed = dim, epochs, lr, l2, seed
        self.W: Any = None   # d x dim: the prompt projection
        self.P: Any = None   # m x dim: the model embeddings

    def fit(self, X: Any, scores: Any) -> "MatrixFactorization":
        import numpy as np

        scores = np.asarray(scores, dtype=float)
        n, m = scores.shape
        q, a, b = [], [], []
        for i in range(m):
            for j in range(m):
                if i != j:   # RouteLLM trains on preferences: (prompt, winner, loser); a tie says nothing
                    wins = np.flatnonzero(scores[:, i] > scores[:, j])
                    q.append(wins), a.append(np.full(len(wins), i)), b.append(np.full(len(wins), j))
        q, a, b = (np.concatenate(v) for v in (q, a, b))
        rng = np.random.default_rng(self.seed)
        W = rng.normal(0, 0.1, (X.shape[1], self.dim))
        P = rng.normal(0, 0.1, (m, self.dim))
        params, moments = [W, P], [[np.zeros_like(W), np.zeros_like(W)], [np.zeros_like(P), np.zeros_like(P)]]
        b1, b2, eps = 0.9, 0.999, 1e-8
        Xt = X.T.tocsr() if hasattr(X, "tocsr") else X.T
        for step in range(1, self.epochs + 1):
            U = np.asarray(X @ W)                       # n x dim
            D = P[a] - P[b]
            logit = np.einsum("ij,ij->i", D, U[q])
            g = -1.0 / (1.0 + np.exp(logit)) / max(len(q), 1)   # d(mean log-loss of the winners) / d logit
            gU = np.zeros_like(U)
            np.add.at(gU, q, g[:, None] * D)
            gD = g[:, None] * U[q]
            gP = np.zeros_like(P)
            np.add.at(gP, a, gD)
            np.add.at(gP, b, -gD)
            grads = [np.asarray(Xt @ gU) + self.l2 * W, gP + self.l2 * P]
            for p, grad, (m1, m2) in zip(params, grads, moments):
                m1 *= b1
                m1 += (1 - b1) * grad
                m2 *= b2
                m2 += (1 - b2) * grad * grad
                p -= self.lr * (m1 / (1 - b1 ** step)) / (np.sqrt(m2 / (1 - b2 ** step)) + eps)
        self.W, self.P = W, P
        return self

    def predict(self, X: Any) -> Any:
        import numpy as np

        return np.asarray(X @ self.W) @ self.P.T

    def arrays(self) -> dict[str, Any]:
        return {"W": self.W, "P": self.P}

    @classmethod
    def from_arrays(cls, a: dict[str, Any]) -> "MatrixFactorization":
        self = cls(dim=a["P"].shape[1])
        self.W, self.P = a["W"], a["P"]
        return self


PREDICTORS = {"ridge": RidgeScores, "knn": KnnScores, "mf": MatrixFactorization}


def predictor(router: str, seed: int = 0) -> RidgeScores | KnnScores | MatrixFactorization:
    """The predictor behind a router name (``linear`` and ``multi`` share the ridge regression)."""
    if router in ("linear", "multi"):
        return RidgeScores()
    if router == "knn":
        return KnnScores()
    if router == "mf":
        return MatrixFactorization(seed=seed)
    raise ValueError(f"unknown router {router!r} (use {', '.join(ROUTERS)})")


# --- decision rules --------------------------------------------------------------------------------------------


LAMBDA_STEPS = 41   # the cost rule's sweep: 0, then 41 values from 1/100 to 100 times 1/(cost spread), then inf


def cost_choice(values: Any, cost: Any, lam: float) -> Any:
    """Per prompt the column maximising value - lam * cost (``cost``: a mean cost per column, or one such row
    per prompt); the cheaper column wins ties, and a lambda of infinity picks the cheapest everywhere."""
    import numpy as np

    cost = np.broadcast_to(np.asarray(cost, dtype=float), values.shape)
    if not np.isfinite(lam):
        return cost.argmin(axis=1)
    util = values - lam * cost
    tied = util >= util.max(axis=1, keepdims=True) - 1e-12
    return np.where(tied, cost, np.inf).argmin(axis=1)


@dataclass(frozen=True)
class Rule:
    """How predicted values become a choice: ``pair`` (strong when value(strong) - value(weak) >= threshold)
    or ``cost`` (argmax value - lambda * cost).  ``cols``: the outcome-table columns the values refer to
    (pair: strong, weak)."""

    kind: str
    cols: tuple[int, ...]
    lambdas: tuple[float, ...] = ()

    @classmethod
    def pair(cls, strong: int, weak: int) -> "Rule":
        return cls("pair", (strong, weak))

    @classmethod
    def cost_rule(cls, cols: tuple[int, ...], mean_cost: Any) -> "Rule":
        """The lambda sweep scaled to the table: lambda * (cost spread) runs from 1/100 to 100."""
        import numpy as np

        spread = float(np.ptp(mean_cost)) or 1.0
        return cls("cost", cols, (0.0, *(np.geomspace(1e-2, 1e2, LAMBDA_STEPS) / spread).tolist()))

    def gain(self, values: Any) -> Any:
        return values[:, 0] - values[:, 1]

    def choose(self, values: Any, unit_cost: Any, param: float) -> Any:
        """The outcome column each prompt goes to at this threshold (pair) or lambda (cost)."""
        import numpy as np

        cols = np.asarray(self.cols)
        if self.kind == "pair":
            return np.where(self.gain(values) >= param, cols[0], cols[1])
        return cols[cost_choice(values, unit_cost, param)]

    def params(self, values: Any) -> list[float]:
        """Candidate operating points: gain quantiles 0, 1, ..., 100 % (and inf: all weak), or the lambdas."""
        import numpy as np

        if self.kind == "pair":
            return sorted(set(np.quantile(self.gain(values), np.linspace(0, 1, 101)).tolist())) + [float("inf")]
        return [*self.lambdas, float("inf")]

    def curve(self, o: Outcomes, values: Any, unit_cost: Any, name: str, kind: str = "router") -> list[Point]:
        """The points a sweep of this rule reaches on ``o``: RouteLLM's threshold quantiles, or the lambdas."""
        if self.kind == "pair":
            strong, weak = (o.models[c] for c in self.cols)
            return threshold_curve(o, self.gain(values), strong, weak, name=name, kind=kind)
        return [choice_point(o, f"{name}(lambda={lam:.4g})", self.choose(values, unit_cost, lam), kind)
                for lam in (*self.lambdas, float("inf"))]


class IntentLookup:
    """The per-intent lookup table, a baseline: each model's mean training score per intent (intents not
    seen in training: the mean over all training prompts).  Its 'features' are the prompts' intents."""

    name = "lookup"

    def __init__(self) -> None:
        self.table: dict[str, Any] = {}
        self.overall: Any = None

    def fit(self, intents: list[str | None], scores: Any) -> "IntentLookup":
        import numpy as np

        scores = np.asarray(scores, dtype=float)
        keys = np.array([i or "" for i in intents], dtype=object)
        self.table = {k: scores[keys == k].mean(axis=0) for k in dict.fromkeys(keys.tolist())}
        self.overall = scores.mean(axis=0)
        return self

    def predict(self, intents: list[str | None]) -> Any:
        import numpy as np

        return np.array([self.table.get(i or "", self.overall) for i in intents]).reshape(len(intents), -1)
