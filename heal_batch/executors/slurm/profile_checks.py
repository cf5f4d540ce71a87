"""Validation of a cluster profile's YAML mapping (``heal_batch.executors.slurm.profiles``).

Input: the file's path (for messages), the mapping, a key prefix (``per_stage.train.``) and the
valid keys. Output: a clean copy (``setup`` and ``srun_args`` lists, ``additional`` values as
sbatch strings) or a ``ProfileError`` that names the file and the key and says what was expected.

    clean = validated(Path("gpu.yaml"), {"time_min": 60}, "", ["time_min", "partition"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class ProfileError(ValueError):
    """A cluster profile file that cannot be used; the message names the file and key."""


_OPTIONAL_STR = ("partition", "account", "qos", "constraint", "exclude")
_POSITIVE_INT = ("time_min", "cpus_per_task", "nodes", "tasks_per_node", "array_parallelism")


def validated(path: Path, data: dict, prefix: str, valid: Sequence[str]) -> dict:
    """A copy of `data` with every key checked; numbers in `additional` become strings."""
    for key, value in data.items():
        if key not in valid:
            raise ProfileError(
                f"{path}: unknown key {prefix}{key!r}; valid keys: {', '.join(valid)}"
            )
        accepts, expected = _CHECKS.get(key, (_anything, ""))
        if not accepts(value):
            raise ProfileError(f"{path}: {prefix}{key} {expected}, got {value!r}")
    clean = dict(data)
    for key in ("setup", "srun_args"):
        if key in clean:
            clean[key] = list(clean[key] or [])
    if "additional" in clean:
        clean["additional"] = {
            str(k): v if v is True else str(v) for k, v in (clean["additional"] or {}).items()
        }
    return clean


def _anything(value: Any) -> bool:
    return True


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_option_value(value: Any) -> bool:
    return value is True or isinstance(value, str) or _is_number(value)


# key -> (accepts(value), what was expected); keys not listed (per_stage) are checked elsewhere.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: isinstance(v, str) and v != "", "must be a non-empty string"),
    **{
        k: (lambda v: v is None or isinstance(v, str), "must be a string or null")
        for k in _OPTIONAL_STR
    },
    **{k: (lambda v: _is_int(v, 1), "must be an integer >= 1") for k in _POSITIVE_INT},
    "gpus_per_node": (lambda v: _is_int(v, 0), "must be an integer >= 0"),
    "max_requeues": (lambda v: _is_int(v, 0), "must be an integer >= 0"),
    "array_size_limit": (lambda v: v is None or _is_int(v, 1), "must be an integer >= 1 or null"),
    "mem_gb": (lambda v: v is None or (_is_number(v) and v > 0), "must be a number > 0 or null"),
    "setup": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "must be a list of shell lines (strings)",
    ),
    "additional": (
        lambda v: v is None or (isinstance(v, dict) and all(map(_is_option_value, v.values()))),
        "must map sbatch option names to values (true for a bare flag)",
    ),
    "python": (
        lambda v: v is None or (isinstance(v, str) and v.strip() != ""),
        "must be a shell command that runs Python (e.g. 'apptainer exec image.sif python') or null",
    ),
    "srun_args": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "must be a list of srun arguments (strings), e.g. ['--container-image=img.sqsh']",
    ),
}
