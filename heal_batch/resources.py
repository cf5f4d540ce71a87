"""Where heal_batch finds the files it reads at run time but keeps outside the package.

The lm-eval tasks live in the repository's top-level ``eval/`` and the cluster profiles in
``slurm/profiles/``. A wheel carries copies of both inside the package, under
``heal_batch/bundled/`` (the ``package-dir`` mapping in pyproject.toml), so an installed heal-batch
needs no checkout. A checkout or an editable install has no ``bundled/`` and reads the top-level
folders as they are.

    resource_dir("eval")      # the lm-eval task YAMLs and their utils.py
    profile_dirs()            # where `--cluster <name>` looks for <name>.yaml, first match wins

The search path for a named cluster profile:

1. each folder in ``$HEAL_BATCH_PROFILES`` (several separated by ``:``), e.g. a site's profiles;
2. ``slurm/profiles/`` under the current directory (a project's own profiles);
3. the profiles that come with heal-batch (``resource_dir("profiles")``).

A path (anything with a ``/`` or ending in ``.yaml``) is read as given and skips the search.
This module imports only the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROFILES_ENV", "profile_dirs", "resource_dir"]

PROFILES_ENV = "HEAL_BATCH_PROFILES"
RESOURCES = {"eval": "eval", "profiles": "slurm/profiles"}  # name -> folder in the repository
_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder of the resource ``name`` (``eval`` or ``profiles``).

    The copy inside the installed package (``heal_batch/bundled/<name>``) comes first; without one
    (a checkout or an editable install) the repository's folder is used. Raises FileNotFoundError
    when neither exists, i.e. a broken install.
    """
    if name not in RESOURCES:
        raise ValueError(f"no resource named {name!r}; valid: {', '.join(RESOURCES)}")
    candidates = (_PACKAGE / "bundled" / name, _PACKAGE.parent / RESOURCES[name])
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"heal_batch's {name!r} folder is missing (looked in {candidates[0]} and "
        f"{candidates[1]}); reinstall heal-batch, or run from a checkout of its repository"
    )


def profile_dirs() -> list[Path]:
    """The folders searched for a named cluster profile, in order (see the module docstring)."""
    own = [Path(p) for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p]
    return [*own, Path("slurm") / "profiles", resource_dir("profiles")]
