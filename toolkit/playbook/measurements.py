"""Measured scores: the score tables ``routekit eval baseline`` writes under a quality directory, one row per
(prompt, model), read as one long table."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import OutcomeTableError


def read_scores(quality_dirs: Iterable[str | os.PathLike]) -> Any:
    """Every baseline score table under the directories (recursively): ``scores.parquet`` / ``.csv`` (or the
    ``outcomes.*`` names written before the rename), else the ``scores.jsonl`` store.  A (prompt, model) measured
    twice keeps its latest row.  Columns of the score table (toolkit/evals/score_table.py) plus ``source``."""
    import polars as pl

    from ..evals import SCORE_TABLE_FILES, ScoreStore, score_schema, scores_frame

    frames = []
    for root in map(Path, quality_dirs):
        if not root.is_dir():
            raise OutcomeTableError(f"{root}: no such quality directory (where routekit eval baseline wrote)")
        folders = sorted({p.parent for name in (*SCORE_TABLE_FILES, ScoreStore.NAME, ScoreStore.OLD_NAME)
                          for p in root.rglob(name)})
        for folder in folders:
            table = next((folder / n for n in SCORE_TABLE_FILES if (folder / n).exists()), None)
            try:
                if table is None:
                    frame = scores_frame(list(ScoreStore(folder).load().values()))
                elif table.suffix == ".parquet":
                    frame = pl.read_parquet(table)
                else:
                    frame = pl.read_csv(table, infer_schema_length=None)
            except Exception as e:  # noqa: BLE001 — the reader's own error, with the file named
                raise OutcomeTableError(f"{table or folder}: cannot read the score table: "
                                        f"{str(e).splitlines()[0]}") from None
            frame = pl.concat([pl.DataFrame(schema=score_schema()), frame], how="diagonal_relaxed")
            frames.append(frame.select(list(score_schema())).with_columns(source=pl.lit(str(table or folder))))
    if not frames:
        return pl.DataFrame(schema={**score_schema(), "source": pl.String})
    return (pl.concat(frames, how="vertical_relaxed").sort("timestamp", nulls_last=False)
            .unique(["prompt_id", "model"], keep="last", maintain_order=True))


def measured(scores: Any, intent: str) -> dict[str, int]:
    """Models with measurements for ``intent``: how many scored answers each (a failed call counts, scored 0)."""
    import polars as pl

    from ..evals import effective_score

    rows = scores.filter(pl.col("intent") == intent).with_columns(s=effective_score()).drop_nulls("s")
    return dict(rows.group_by("model").len().iter_rows())
