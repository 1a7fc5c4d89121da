"""Tables a reviewer reads: polars frames drawn by great_tables, and the number formats every page shares.

``show(frame, name)`` formats each column by its name, the dashboards' conventions:

=========================================  ==============  =============================================
column                                     shown as        e.g.
=========================================  ==============  =============================================
``*_usd``, ``cost``                        money           $1,234.56 (more decimals when all are cents)
``*rate``, ``share``, ``*_share``, ``*_pct``  percent         12.3%
``*_ms``, ``p50``/``p95``/``p99``          milliseconds    1,234 ms
other integers                             counts          12,345
other floats                               numbers         0.873
=========================================  ==============  =============================================

Column labels lose their underscores and units (the format shows them).  No dtype row, no ``shape:`` line, no
quoted strings.  A table longer than ``max_rows`` shows its first rows (the frames come sorted by what matters)
and a line saying how many were left out; with ``csv_dir`` the whole table is written there as ``<name>.csv``
(the report runner passes the report's folder, so the CSV sits beside the HTML and the line links to it).

The scalar formatters (``money``, ``percent``, ``ms``, ``count``) write the same figures in findings and headlines.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable

import polars as pl

MAX_ROWS = 20
_MONEY = re.compile(r"(_usd|^cost)$")
_PERCENT = re.compile(r"(rate|share|_pct)$")
_MS = re.compile(r"(_ms|^p(50|95|99))$")
_UNITS = re.compile(r"_(usd|ms|pct)$")
_DOLLARS = re.compile(r"\$([\d,.]*\d|)")


def money_decimals(values: Iterable[float | None]) -> int:
    """Decimals that keep the largest of ``values`` readable: 2 from a dollar up, more below ($0.000920: a demo day
    of cheap models must not read "$0.00" everywhere)."""
    sizes = [abs(x) for x in values if x is not None and math.isfinite(x)]
    top = max(sizes, default=0.0)
    return 2 if top == 0 or top >= 1 else min(6, 2 + math.ceil(-math.log10(top)))


def money(x: float | None, decimals: int | None = None, sign: bool = False) -> str:
    if x is None:
        return "n/a"
    d = money_decimals([x]) if decimals is None else decimals
    return f"{'+' if sign and x > 0 else '-' if x < 0 else ''}${abs(x):,.{d}f}"


def percent(x: float | None, decimals: int = 1, sign: bool = False) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:{'+' if sign else ''},.{decimals}f}%"


def ms(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:,.0f} ms"


def count(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def markdown_money(text: str) -> str:
    """Dollar amounts that stay money in Markdown.  JupyterLab typesets ``$...$`` in rendered Markdown as LaTeX ("spent
    $2.61 on ... $0.81" becomes an equation) and ``\\$`` does not help (Markdown turns it into a bare ``$`` first);
    MathJax skips an element of class ``tex2jax_ignore``, and the entity keeps nbconvert's own math pass off it."""
    return _DOLLARS.sub(lambda m: f'<span class="tex2jax_ignore">&#36;{m[1]}</span>', text)


def label(column: str) -> str:
    """``cost_per_success_usd`` -> ``cost per success``."""
    return _UNITS.sub("", column).replace("_", " ")


def kind(column: str, dtype: pl.DataType) -> str:
    """money | percent | ms | count | number | text, from the column's name and type."""
    if not dtype.is_numeric():
        return "text"
    if _MONEY.search(column):
        return "money"
    if _PERCENT.search(column):
        return "percent"
    if _MS.search(column):
        return "ms"
    return "count" if dtype.is_integer() else "number"


def show(frame: pl.DataFrame | pl.LazyFrame, name: str, title: str | None = None, *, max_rows: int = MAX_ROWS,
         csv_dir: str | Path | None = None, labels: dict[str, str] | None = None) -> Any:
    """``frame`` as a formatted great_tables table (displays itself in JupyterLab and nbconvert's HTML).

    ``name`` names the full CSV (``csv_dir/<name>.csv``, written when ``csv_dir`` is set and the table is cut)."""
    from great_tables import GT, md

    full = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    shown = full.head(max_rows)
    table = GT(shown)
    if title:
        table = table.tab_header(title=title)
    for column, dtype in shown.schema.items():
        k = kind(column, dtype)
        if k == "money":
            table = table.fmt_currency(column, currency="USD", decimals=money_decimals(full[column].to_list()))
        elif k == "percent":
            table = table.fmt_percent(column, decimals=1)
        elif k == "ms":
            table = table.fmt_number(column, decimals=0, pattern="{x} ms")
        elif k == "count":
            table = table.fmt_integer(column)
        elif k == "number":
            table = table.fmt_number(column, n_sigfig=3)
    table = table.cols_label(**{c: (labels or {}).get(c, label(c)) for c in shown.columns}).sub_missing(
        missing_text="–")
    if full.is_empty():
        table = table.tab_source_note("None.")
    left_out = full.height - shown.height
    if left_out > 0:
        note = f"{left_out:,} more row{'s' * (left_out != 1)} not shown"
        if csv_dir:
            path = Path(csv_dir) / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            full.write_csv(path)
            note += f"; the full table: [{path.name}]({path.name})"
        table = table.tab_source_note(md(note))
    return table
