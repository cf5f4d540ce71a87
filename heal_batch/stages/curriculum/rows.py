"""The pool curriculum decides over: one row per sample, plus the PURE reference scores.

Input: the records of every generate shard (natural trajectories, no ``kind``) and every score
shard (``repair`` / ``answer_guided`` candidates with a ``pure`` block, ``reference`` records,
summaries, which are skipped). Output: ``(rows, references)``; a row holds what the fate rules and
the training example need (``curriculum_sets.ROW_SCHEMA``), a reference is a ``ScoredCandidate``
with its ratio and answer NLL. Sample ids must be unique across the run (ValueError naming both
shards otherwise).

    rows, refs = read_pool(addresses, io.read, PaceConfig(), user_suffix="")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from heal_batch.method.pace import PaceConfig, bucket
from heal_batch.method.pure import ScoredCandidate
from heal_batch.records import CANDIDATE_KINDS


def read_pool(
    shards: list[str],
    read: Callable[[str], Iterable[dict[str, Any]]],
    pace: PaceConfig,
    user_suffix: str,
) -> tuple[list[dict[str, Any]], list[ScoredCandidate]]:
    """Sample rows (natural + candidates) and the reference PURE scores of every input shard."""
    from heal_batch.method.decontam import near_duplicate_key

    rows: list[dict[str, Any]] = []
    references: list[ScoredCandidate] = []
    seen: dict[str, str] = {}
    for address in shards:
        for record in read(address):
            kind = record.get("kind")
            if kind == "reference":
                pure = record.get("pure") or {}
                references.append(
                    ScoredCandidate(record["id"], pure.get("ratio"), None, pure.get("answer_nll"))
                )
                continue
            if kind not in (None, *CANDIDATE_KINDS):
                continue  # repair summaries: counted by repair and score
            row = sample_row(record, pace, user_suffix)
            if row["id"] in seen:
                raise ValueError(
                    f"sample id {row['id']!r} appears twice (shards {seen[row['id']][:12]} and "
                    f"{address[:12]}); ids must be unique across a run"
                )
            seen[row["id"]] = address
            text = row["user"] + "\n" + row["assistant"]
            row["near_key"] = near_duplicate_key(text)
            row["exact_key"] = hashlib.sha256(
                json.dumps([row["system"], row["user"], row["assistant"]]).encode()
            ).hexdigest()
            rows.append(row)
    return rows, references


def sample_row(r: dict[str, Any], pace: PaceConfig, user_suffix: str) -> dict[str, Any]:
    """One sample: a generate trajectory (no ``kind``; bucketed with ``pace``'s thresholds) or a
    scored candidate (bucket as repair recorded it)."""
    kind = r.get("kind") or "natural"
    natural = kind == "natural"
    pure = r.get("pure") or {}
    problem_bucket = r.get("bucket")
    if problem_bucket is None and r.get("k"):
        problem_bucket = bucket(r["n_correct"], r["k"], pace)
    user = None if natural else r.get("user_prompt")
    return {
        "id": r["id"],
        "kind": kind,
        "problem_id": r["problem_id"],
        "problem": r["problem"],
        "bucket": problem_bucket,
        "system": r.get("system_prompt"),
        "user": user or r["problem"] + user_suffix,
        "assistant": r["completion"] if natural else r["text"],
        "correct": bool(r.get("correct", not natural)),
        "scored": r.get("pure") is not None,
        "ratio": pure.get("ratio"),
        "answer_nll": pure.get("answer_nll"),
        "reasoning_tokens": pure.get("reasoning_tokens"),
        "unscored_reason": pure.get("unscored_reason"),
    }
