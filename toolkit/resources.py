"""The files routekit ships with: price snapshots, the example and demo policies, prompt sets, scenarios, drills,
the derived outcome tables and the notebooks.

They are package data found through ``importlib.resources``: in an installed wheel they sit inside the package
(``toolkit/data``, ``toolkit/notebooks``); in a source checkout those two names are symlinks to the repository's
``data/`` and ``notebooks/``, so both layouts read the same, single copy.  ``$ROUTEKIT_DATA`` names another data
directory of the same layout (``toolkit.costs`` also honours ``$ROUTEKIT_PRICES``, one snapshot file).

    >>> from toolkit import resources
    >>> resources.data_file("policy.example.yaml")       # the shipped example policy
    >>> resources.default_policy()                        # $ROUTEKIT_POLICY, else the shipped demo policy

Commands take the paths the README shows (``data/scenarios/three-approaches.yaml``) from any directory: a
relative ``data/...`` path that does not exist where the command runs is read from the shipped data
(:func:`find`).
"""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

DEMO_POLICY = "policy.demo.yaml"
EXAMPLE_POLICY = "policy.example.yaml"


def _package_dir(name: str) -> Path:
    return Path(str(files(__package__) / name))


def data_dir() -> Path:
    """The data directory: ``$ROUTEKIT_DATA``, else the one shipped in the package."""
    env = os.environ.get("ROUTEKIT_DATA")
    return Path(env) if env else _package_dir("data")


def data_file(name: str) -> Path:
    """A shipped data file by its path under ``data/``, e.g. ``"prompts/triage.jsonl"``."""
    return data_dir() / name


def notebook_dir() -> Path:
    """The shipped dashboard and research notebooks."""
    return _package_dir("notebooks")


def default_policy() -> str:
    """The policy a command uses when none is given: ``$ROUTEKIT_POLICY``, else the shipped demo policy (its
    models are served by the simulator and the local model, so it works with no vendor key)."""
    return os.environ.get("ROUTEKIT_POLICY") or str(data_file(DEMO_POLICY))


def find(path: str | os.PathLike) -> Path:
    """A file a user named: as given when it exists (or is absolute); a relative ``data/...`` path that does not
    exist here is the shipped file of that name, when there is one.  Anything else comes back unchanged, for the
    reader to report as missing."""
    given = Path(path)
    if given.is_absolute() or given.exists() or not given.parts or given.parts[0] != "data":
        return given
    shipped = data_dir().joinpath(*given.parts[1:])
    return shipped if shipped.exists() else given


class ExportConflict(FileExistsError):
    """Files already in the destination; nothing was written."""


def export(dest: str | os.PathLike, force: bool = False) -> list[Path]:
    """Copy the notebooks and the example policy into ``dest`` (a project of the user's), ready to open in
    JupyterLab; refuses, writing nothing, when a file of the same name is there unless ``force``."""
    import shutil

    out = Path(dest)
    sources = [*sorted(notebook_dir().glob("*.ipynb")), data_file(EXAMPLE_POLICY)]
    taken = [out / s.name for s in sources if (out / s.name).exists()]
    if taken and not force:
        raise ExportConflict(f"{', '.join(map(str, taken))}: already there (--force to overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(s, out / s.name)) for s in sources]
