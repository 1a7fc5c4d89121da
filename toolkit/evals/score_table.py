"""The score table of a baseline — one scored answer per (prompt, model) — its columns, the append-only store it
is written to, and its summary per model x intent.

Files in a baseline's directory: ``scores.jsonl`` (the store), ``scores.parquet`` / ``scores.csv`` (the table)
and ``summary.csv``.  Before these were named "scores" they were ``outcomes.*``; a directory written then is
still read (:data:`SCORE_TABLE_FILES`, :class:`ScoreStore`), so a baseline resumed across the rename pays
nothing twice.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

SCORE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("prompt_id", "str"), ("intent", "str"), ("model", "str"), ("score", "float"), ("latency_ms", "float"),
    ("input_tokens", "int"), ("output_tokens", "int"), ("tokens", "int"), ("cost_usd", "float"),
    ("error", "str"), ("detail", "str"), ("judge_cost_usd", "float"), ("target", "str"),
    ("response_model", "str"), ("request_id", "str"), ("prompt_hash", "str"), ("output_hash", "str"),
    ("output", "str"), ("attempts", "int"), ("timestamp", "str"), ("policy_version", "str"),
    ("price_version", "str"),
)
# A baseline directory's score table, best first; the outcomes.* names were written before the rename.
SCORE_TABLE_FILES = ("scores.parquet", "scores.csv", "outcomes.parquet", "outcomes.csv")


def score_schema() -> dict[str, Any]:
    import polars as pl

    kinds = {"str": pl.String, "float": pl.Float64, "int": pl.Int64}
    return {name: kinds[kind] for name, kind in SCORE_COLUMNS}


class ScoreStore:
    """The append-only ``scores.jsonl`` of a baseline: one line per finished (prompt, model) call.

    Each line is one ``os.write`` on an ``O_APPEND`` descriptor, written the moment its call ends, so an
    interruption loses nothing already paid for.  A torn last line (a hard kill mid-write) is reported
    and ignored; its call is made again.
    """

    NAME = "scores.jsonl"
    OLD_NAME = "outcomes.jsonl"   # written before the rename: read first, never written

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / self.NAME
        self.bad_lines: list[str] = []
        self._lock = threading.Lock()

    def load(self) -> dict[tuple[str, str], dict]:
        """Scored answers by (prompt_id, model); a later line for the same key wins (a retried error)."""
        rows: dict[tuple[str, str], dict] = {}
        self.bad_lines = []
        for path in (self.path.with_name(self.OLD_NAME), self.path):
            if not path.exists():
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    rows[(row["prompt_id"], row["model"])] = row
                except (ValueError, KeyError, TypeError):
                    self.bad_lines.append(f"{path}:{n}: not a scored answer (torn by a hard kill?) - ignored, "
                                          f"its call will be made again")
        return rows

    def append(self, row: dict) -> None:
        data = (json.dumps(row, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size:
                    with open(self.path, "rb") as f:  # never glue a line onto a torn one
                        f.seek(size - 1)
                        if f.read(1) != b"\n":
                            data = b"\n" + data
                os.write(fd, data)
            finally:
                os.close(fd)


def scores_frame(rows: list[dict]) -> Any:
    import polars as pl

    schema = score_schema()
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def effective_score() -> Any:
    """A failed call is a wrong answer (0); a call never made (refused by a boundary or a kill switch)
    and an answer that could not be scored are not measurements (null)."""
    import polars as pl

    failed = pl.col("error").is_not_null()
    return (pl.when(failed & (pl.col("attempts") > 0)).then(0.0)
            .when(failed).then(None).otherwise(pl.col("score")))


def summarize_scores(scores: Any) -> Any:
    """Per model x intent (and intent ``*`` = all): prompts, scored, mean score (errors count 0), errors,
    p50 latency of answered calls, cost per prompt (mean of priced calls), total cost."""
    import polars as pl

    aggs = [pl.len().alias("prompts"), effective_score().count().alias("scored"),
            effective_score().mean().alias("mean_score"), pl.col("error").count().alias("errors"),
            pl.col("latency_ms").filter(pl.col("error").is_null()).median().alias("p50_latency_ms"),
            pl.col("cost_usd").mean().alias("cost_per_prompt_usd"), pl.col("cost_usd").sum().alias("total_cost_usd")]
    per_intent = scores.group_by("model", "intent").agg(aggs)
    overall = scores.group_by("model").agg(aggs).with_columns(intent=pl.lit("*"))
    return pl.concat([per_intent, overall.select(per_intent.columns)]).sort("model", "intent")


def write_tables(scores: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    scores.write_parquet(out_dir / "scores.parquet")
    scores.drop("output").write_csv(out_dir / "scores.csv")
    summarize_scores(scores).write_csv(out_dir / "summary.csv")
