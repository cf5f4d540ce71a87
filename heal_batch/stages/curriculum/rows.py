"""The pool curriculum decides over, as light columns: one row per sample and no texts.

Input: the records of every generate shard (natural trajectories, no ``kind``) and every score
shard (``repair`` / ``answer_guided`` candidates with a ``pure`` block, ``reference`` records,
summaries, which are skipped). Output: a :class:`Pool`:

- ``table``: one row per sample (``LIGHT_SCHEMA``): what the fate rules read (kind, problem,
  correct, PURE scores, 128-bit exact and near-duplicate keys) and where its texts are
  (``shard``: index in the input list, ``line``: record number in that shard, ``size``:
  characters of its messages). About 100 bytes a sample with ids of about 20 characters.
- ``problems``: problem id -> problem text (decontamination is per problem, not per sample).
- ``references``: per source, R and U of the reference records that have them: ``natural``
  (score's ``reference`` records) and ``guided`` (repair's ``guided_reference`` samples).

A record's texts are dropped as soon as its keys are taken, so memory grows with the light
columns only. Sample ids must be unique across the run (ValueError naming both shards).
The texts are read again, for one set's samples only, by ``write.write_in_order`` with
``sample_texts`` and ``sample_bucket``.

    pool = read_pool(addresses, io.read, PaceConfig(), user_suffix="")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from heal_batch.method.decontam import near_duplicate_key
from heal_batch.method.pace import STAGE_OF_KIND, PaceConfig, bucket
from heal_batch.records import CANDIDATE_KINDS, GUIDED_REFERENCE

if TYPE_CHECKING:
    import polars as pl

LIGHT_SCHEMA = {
    "id": "str",
    "kind": "kind",
    "problem_id": "str",
    "correct": "bool",
    "scored": "bool",
    "ratio": "f64",
    "answer_nll": "f64",
    "reasoning_tokens": "i32",
    "unscored_reason": "cat",
    "exact_key": "u128",
    "near_key": "u128",
    "shard": "u32",
    "line": "u32",
    "size": "u32",
}
REFERENCE_SOURCE = {"reference": "natural", GUIDED_REFERENCE: "guided"}  # record kind -> source
BATCH_ROWS = 1 << 16  # rows gathered in Python lists before they become a polars frame


@dataclass
class Pool:
    """The light pool of a run; see the module docstring."""

    table: pl.DataFrame
    problems: dict[str, str] = field(default_factory=dict)
    references: dict[str, tuple[list[float], list[float]]] = field(
        default_factory=lambda: {"natural": ([], []), "guided": ([], [])}
    )


def read_pool(
    shards: list[str],
    read: Callable[[str], Iterable[dict[str, Any]]],
    pace: PaceConfig,
    user_suffix: str,
) -> Pool:
    """The light rows (plus ``stage``, the PACE stage of the kind; sorted by stage, then id: the
    order duplicates are resolved in), problem texts and reference scores of every input shard."""
    import polars as pl

    pool = Pool(pl.DataFrame(schema=light_schema()))
    frames: list[pl.DataFrame] = []
    batch: dict[str, list] = {name: [] for name in LIGHT_SCHEMA}
    for shard, address in enumerate(shards):
        for line, record in enumerate(read(address)):
            kind = record.get("kind")
            if kind in REFERENCE_SOURCE:
                _add_reference(pool.references[REFERENCE_SOURCE[kind]], record.get("pure") or {})
            elif kind in (None, *CANDIDATE_KINDS):  # not summaries: repair and score count them
                pool.problems[record["problem_id"]] = record["problem"]
                for name, value in light_row(record, pace, user_suffix, shard, line).items():
                    batch[name].append(value)
                if len(batch["id"]) >= BATCH_ROWS:
                    frames.append(_frame(batch))
        if batch["id"]:
            frames.append(_frame(batch))
    if frames:  # chunks, not copied: the sort below writes the one contiguous table
        pool.table = pl.concat(frames, rechunk=False)
    del frames
    _check_unique(pool.table, shards)
    stage = pl.col("kind").replace_strict(STAGE_OF_KIND, return_dtype=pl.Int8)
    pool.table = pool.table.with_columns(stage=stage).sort("stage", "id")
    return pool


def light_row(
    r: dict[str, Any], pace: PaceConfig, user_suffix: str, shard: int, line: int
) -> dict[str, Any]:
    """One sample's light columns (``LIGHT_SCHEMA``); the keys are the first 128 bits of
    sha256 of (system, user, assistant) and ``decontam.near_duplicate_key`` of user + assistant."""
    system, user, assistant = sample_texts(r, user_suffix)
    kind = r.get("kind") or "natural"
    pure = r.get("pure") or {}
    exact = hashlib.sha256(json.dumps([system, user, assistant]).encode()).digest()[:16]
    return {
        "id": r["id"],
        "kind": kind,
        "problem_id": r["problem_id"],
        "correct": bool(r.get("correct", kind != "natural")),
        "scored": r.get("pure") is not None,
        "ratio": pure.get("ratio"),
        "answer_nll": pure.get("answer_nll"),
        "reasoning_tokens": pure.get("reasoning_tokens"),
        "unscored_reason": pure.get("unscored_reason"),
        "exact_key": int.from_bytes(exact, "big"),
        "near_key": int(near_duplicate_key(user + "\n" + assistant), 16),
        "shard": shard,
        "line": line,
        "size": len(system or "") + len(user) + len(assistant),
    }


def sample_texts(r: dict[str, Any], user_suffix: str) -> tuple[str | None, str, str]:
    """(system, user, assistant) of a sample: a generate trajectory (no ``kind``: the problem
    plus ``user_suffix``, its completion) or a candidate (its ``user_prompt``, its ``text``)."""
    natural = (r.get("kind") or "natural") == "natural"
    user = None if natural else r.get("user_prompt")
    assistant = r["completion"] if natural else r["text"]
    return r.get("system_prompt"), user or r["problem"] + user_suffix, assistant


def sample_bucket(r: dict[str, Any], pace: PaceConfig) -> str | None:
    """The problem's bucket: as repair recorded it, else from ``n_correct`` of ``k`` with
    ``pace``'s thresholds (the ones repair used), else None."""
    if r.get("bucket") is None and r.get("k"):
        return bucket(r["n_correct"], r["k"], pace)
    return r.get("bucket")


def light_schema() -> dict:
    import polars as pl

    types = {
        "str": pl.String,
        "kind": pl.Enum(list(STAGE_OF_KIND)),
        "bool": pl.Boolean,
        "f64": pl.Float64,
        "i32": pl.Int32,
        "cat": pl.Categorical,
        "u128": pl.UInt128,
        "u32": pl.UInt32,
    }
    return {name: types[t] for name, t in LIGHT_SCHEMA.items()}


def _add_reference(values: tuple[list[float], list[float]], pure: dict[str, Any]) -> None:
    if pure.get("ratio") is not None:
        values[0].append(pure["ratio"])
    if pure.get("answer_nll") is not None:
        values[1].append(pure["answer_nll"])


def _frame(batch: dict[str, list]) -> pl.DataFrame:
    """The batch as a frame; the batch's lists are emptied."""
    import polars as pl

    frame = pl.DataFrame(batch, schema=light_schema())
    for values in batch.values():
        values.clear()
    return frame


def _check_unique(table: pl.DataFrame, shards: list[str]) -> None:
    """ValueError at the first repeated sample id, naming the shards of both copies."""
    import polars as pl

    if table.height == table["id"].n_unique():
        return
    again = table.with_row_index("row").filter(~pl.col("id").is_first_distinct()).row(0, named=True)
    first = table.filter(pl.col("id") == again["id"]).row(0, named=True)
    raise ValueError(
        f"sample id {again['id']!r} appears twice (shards {shards[first['shard']][:12]} and "
        f"{shards[again['shard']][:12]}); ids must be unique across a run"
    )
