"""Run keys: the identity of one stage run.

``run_key = sha256(stage name, stage version, resolved stage config, upstream run keys,
format version, fingerprint)``. Change a PURE threshold and only ``score`` and what reads it
get new keys; ``generate`` keeps its key and is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from heal_batch.records import OMIT_AT_DEFAULT

FORMAT_VERSION = 1


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and paths → JSON-ready dicts, lists and strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not _omitted(obj, f)
        }
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _omitted(obj: Any, f: dataclasses.Field) -> bool:
    if f.metadata != OMIT_AT_DEFAULT:
        return False
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return getattr(obj, f.name) == default


def run_key(
    stage: str,
    version: int,
    config: Any,
    upstream: Mapping[str, str],
    fingerprint: str = "",
) -> str:
    """The 64-hex-digit key of a stage run; deterministic across machines and processes."""
    material = {
        "stage": stage,
        "version": version,
        "config": to_plain(config),
        "upstream": dict(sorted(upstream.items())),
        "format": FORMAT_VERSION,
        "fingerprint": fingerprint,
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
