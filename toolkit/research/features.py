"""Prompt text -> features for trained routers, with no network at any time.

Two kinds, one interface (``fit(texts)`` on training prompts, ``transform(texts)``, ``state()`` /
``from_state()`` for the router's model file):

* ``tfidf`` — scikit-learn's ``TfidfVectorizer`` (word 1-2-grams, sublinear tf, L2-normalised rows), fitted
  on the training prompts only: the baseline, no weights at all.
* ``embed`` — WordLlama's static embeddings (``wordllama`` 0.4.0.post1 on PyPI, MIT; 256 dimensions, L2-
  normalised).  The 16 MB weights and the tokenizer ship inside the wheel: we load them from the package's
  own folder with ``disable_download=True``, the one switch that makes ``WordLlama.load`` raise instead of
  reaching Hugging Face (its only network path, ``WordLlama.resolve_file``).  The weights were distilled
  from Llama-2-70B's token embeddings (the wheel's ``config/train/l2_supercat.toml``): the package says MIT,
  but whoever ships a router built on them should read the Llama 2 licence too.  An embedding needs no
  fitting, so the vectors of an outcome table's prompts are computed once and cached on disk (see
  :func:`cache_dir`), keyed by the prompts' text and the package version.

Prompt text comes from a ``prompt`` column of the outcome table, a ``--prompts`` JSON Lines file
(``{"prompt_id": ..., "text": ...}`` per line), or, when neither is given, ``<table stem>.prompts.jsonl``
beside the table (``routekit research import --prompts`` writes it).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import MissingExtra
from .replay import OutcomeTableError, read_table

KINDS = ("tfidf", "embed")
EXTRA = "research"
_PACKAGES = {"sklearn": "scikit-learn", "wordllama": "wordllama", "scipy": "scipy"}
EMBED_PACKAGE, EMBED_DIM = "wordllama", 256


def require(module: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtra` naming the extra to install, in one line."""
    try:
        return importlib.import_module(module)
    except ImportError:
        name = _PACKAGES.get(module.split(".")[0], module)
        raise MissingExtra(f"{name} is not installed: pip install 'routekit[{EXTRA}]'") from None


def extra_missing(kind: str) -> str | None:
    """The one-line message :func:`require` would raise for feature ``kind``, without importing anything."""
    from importlib.util import find_spec

    for module in ("sklearn",) + (("wordllama",) if kind == "embed" else ()):
        try:
            found = find_spec(module) is not None
        except ValueError:   # in sys.modules as None: imports of it are blocked
            found = False
        if not found:
            return f"{_PACKAGES[module]} is not installed: pip install 'routekit[{EXTRA}]'"
    return None


# --- prompt text ---------------------------------------------------------------------------------------------


def prompts_beside(table: str | os.PathLike) -> Path:
    p = Path(table)
    return p.with_name(p.stem + ".prompts.jsonl")


def read_prompts(table: str | os.PathLike, prompt_ids: list[str], prompts: str | os.PathLike | None = None) -> list[str]:
    """The text of each prompt in ``prompt_ids``, from ``prompts`` (JSON Lines), the table's ``prompt`` column
    or ``<stem>.prompts.jsonl`` beside the table; raises :class:`OutcomeTableError` naming file and line."""
    texts: dict[str, str] = {}
    if prompts is None and not prompts_beside(table).exists():
        df = read_table(table)
        if "prompt" not in df.columns:
            raise OutcomeTableError(f"{table}: no prompt text: give --prompts FILE (JSON Lines with prompt_id and "
                                    f"text), a 'prompt' column, or {prompts_beside(table)}")
        for pid, text in df.select("prompt_id", "prompt").unique("prompt_id", keep="first").iter_rows():
            if text is not None:
                texts[str(pid)] = str(text)
        where = f"{table}: column 'prompt'"
    else:
        path = Path(prompts) if prompts is not None else prompts_beside(table)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise OutcomeTableError(f"{path}: cannot read prompts: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                texts[str(row["prompt_id"])] = str(row["text"])
            except (ValueError, KeyError, TypeError) as e:
                raise OutcomeTableError(f"{path}:{n}: expected a JSON object with 'prompt_id' and 'text' "
                                        f"({type(e).__name__}: {e})") from None
        where = str(path)
    missing = [p for p in prompt_ids if p not in texts]
    if missing:
        raise OutcomeTableError(f"{where}: no text for {len(missing)} of {len(prompt_ids)} prompts "
                                f"(first: {', '.join(map(repr, missing[:3]))})")
    return [texts[p] for p in prompt_ids]


# --- the two kinds ----------------------------------------------------------------------------------------------


class Tfidf:
    """TF-IDF over word 1-2-grams, fitted on the training prompts (vocabulary and idf)."""

    kind = "tfidf"

    def __init__(self, max_features: int = 20000, min_df: int = 2):
        self.max_features, self.min_df = max_features, min_df
        self._vec: Any = None

    def _vectorizer(self, **kw: Any) -> Any:
        text = require("sklearn.feature_extraction.text")
        import numpy as np

        return text.TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32, **kw)

    def fit(self, texts: list[str]) -> "Tfidf":
        min_df = self.min_df if len(texts) >= 10 * self.min_df else 1   # tiny tables keep every term
        self._vec = self._vectorizer(max_features=self.max_features, min_df=min_df).fit(texts)
        return self

    def transform(self, texts: list[str]) -> Any:
        return self._vec.transform(texts)

    def state(self) -> dict[str, Any]:
        return {"vocabulary": self._vec.get_feature_names_out().astype(str), "idf": self._vec.idf_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Tfidf":
        self = cls()
        self._vec = self._vectorizer(vocabulary={t: i for i, t in enumerate(state["vocabulary"].tolist())})
        self._vec.idf_ = state["idf"]
        return self


class Embed:
    """WordLlama embeddings (unsupervised: ``fit`` does nothing); vectors remembered per text."""

    kind = "embed"
    _model: Any = None   # one loaded model per process (0.3 s, 16 MB)

    def __init__(self) -> None:
        self._memo: dict[str, Any] = {}

    @classmethod
    def model(cls) -> Any:
        if cls._model is None:
            wordllama = require("wordllama")
            # the wheel's own folder as cache, downloads off: see the module docstring
            cls._model = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        return cls._model

    def fit(self, texts: list[str]) -> "Embed":
        return self

    def transform(self, texts: list[str]) -> Any:
        import numpy as np

        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            vectors = np.asarray(self.model().embed(todo, norm=True), dtype=np.float32)
            self._memo.update(zip(todo, vectors))
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, EMBED_DIM), np.float32)

    def preload(self, texts: list[str], cache: Path | None) -> None:
        """Embed ``texts`` once, through the on-disk cache (``cache`` a file path, or None for no cache)."""
        import numpy as np

        if cache is not None and cache.exists():
            vectors = np.load(cache, allow_pickle=False)
            if vectors.shape == (len(texts), EMBED_DIM):
                self._memo.update(zip(texts, vectors))
                return
        vectors = self.transform(texts)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                np.save(f, vectors)
            tmp.replace(cache)

    def state(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Embed":
        return cls()


def make(kind: str) -> Tfidf | Embed:
    if kind not in KINDS:
        raise ValueError(f"unknown feature kind {kind!r} (use {' or '.join(KINDS)})")
    return Tfidf() if kind == "tfidf" else Embed()


def describe(kind: str) -> dict[str, Any]:
    """What a model file records about its features (checked again when the Router loads it)."""
    if kind == "tfidf":
        return {"kind": "tfidf", "package": "scikit-learn", "ngram_range": [1, 2], "sublinear_tf": True}
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(EMBED_PACKAGE)
    except PackageNotFoundError:
        installed = None
    return {"kind": "embed", "package": EMBED_PACKAGE, "version": installed, "dim": EMBED_DIM}


# --- the cache ------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """``$ROUTEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/routekit``, else ``~/.cache/routekit``; features under it."""
    root = os.environ.get("ROUTEKIT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "routekit"
    return Path(root) / "features"


def cache_file(kind: str, texts: list[str], source: str, root: Path | None = None) -> Path:
    """Where the ``kind`` features of these prompt texts live: one file per outcome table and content."""
    h = hashlib.sha256(json.dumps(describe(kind), sort_keys=True).encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return (root or cache_dir()) / f"{Path(source).stem or 'table'}-{kind}-{h.hexdigest()[:16]}.npy"
