"""Names read from a run folder, checked before any of them becomes a path.

Everything under ``<workdir>`` is addressed by three kinds of names: run keys and shard addresses
(a sha256: exactly 64 lowercase hex digits) and stage names (lowercase letters, digits, ``-``).
A ref, manifest or receipt holding anything else (``../../x``, an absolute path, an unknown stage)
is refused with :class:`RunFolderError`, which names the file the value came from;
:class:`~heal_batch.store.layout.Layout` checks again, so no path is ever built from an unchecked
name.

    check_key(text, source=ref_path)       # -> text, or RunFolderError "refs/generate: run key …"
    check_stage(manifest["stage"], path)    # -> the name, or RunFolderError naming the file
"""

from __future__ import annotations

import re
from pathlib import Path

_HEX64 = re.compile(r"[0-9a-f]{64}")
_STAGE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RunFolderError(ValueError):
    """A file of the run folder holds a value it must not; the message names file and value."""


def check_key(value: object, source: Path | str | None = None) -> str:
    """A run key: 64 lowercase hex digits."""
    return _check_hex(value, "run key", source)


def check_address(value: object, source: Path | str | None = None) -> str:
    """A shard address: 64 lowercase hex digits (the sha256 of the shard's records)."""
    return _check_hex(value, "shard address", source)


def check_stage(value: object, source: Path | str | None = None) -> str:
    """A stage name as stages are named (lowercase letters, digits and ``-``, e.g. ``train-1``):
    safe as one path component. Whether the pipeline has such a stage is the pipeline's
    question (``heal_batch.pipeline.registry.registered``); the store knows no stages."""
    if not isinstance(value, str) or not _STAGE.fullmatch(value):
        raise RunFolderError(
            f"{_at(source)}stage {_show(value)} is not a stage name (lowercase "
            "letters, digits and '-')"
        )
    return value


def check_index(value: object, source: Path | str | None = None) -> int:
    """A task index: an integer >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RunFolderError(f"{_at(source)}task index {_show(value)} is not an integer >= 0")
    return value


def check_plain(value: object, what: str, source: Path | str | None = None) -> str:
    """A single plain path component (letters, digits, ``.``, ``_``, ``-``; not ``.``/``..``)."""
    if not isinstance(value, str) or not _PLAIN.fullmatch(value) or set(value) == {"."}:
        raise RunFolderError(
            f"{_at(source)}{what} {_show(value)} is not a plain name "
            "(letters, digits, '.', '_', '-')"
        )
    return value


def _check_hex(value: object, what: str, source: Path | str | None) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise RunFolderError(
            f"{_at(source)}{what} {_show(value)} is not 64 lowercase hex digits (a sha256)"
        )
    return value


def _at(source: Path | str | None) -> str:
    return f"{source}: " if source is not None else ""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
