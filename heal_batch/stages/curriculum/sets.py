"""The PACE training sets from one pooled light table of samples: every sample's fate, then a set.

Inputs: the light table of ``rows.read_pool`` (ids, kinds, buckets, PURE scores, dedup keys; no
texts), the reference trajectories' ratios and answer NLLs, the contaminated problem ids, the
curriculum config and the PURE section. Output: the table with a ``fate`` column, ``"kept"`` or
the first rule that dropped the sample, and per set its kept rows (a select on ``kind`` and
``fate``) plus counters. Everything here is polars over light columns; only PURE's pools and the
rows of groups over a cap become Python objects.

Fates are decided once for the whole pool, in this order (first match wins):

1. ``incorrect``: a natural trajectory whose answer was wrong (rejection sampling).
2. PURE (kinds in ``pure.kinds``): ``pure.decide`` over ALL scored candidates of the run, pooled
   per kind (default; the top-lambda share is then a share of each kind: answer-guided samples
   are scored over the whole trajectory and repairs only after the cut, so their ratios are not
   on one scale) or all kinds together. Reasons: ``no_reasoning_after_cut``, ``top_lambda``,
   ``above_reference_q95``, ``answer_not_derived_q95``, ``no_steps_after_cut``,
   ``no_boxed_answer``, ``not_scored`` (no ``pure`` field).
3. ``contaminated``: the problem shares an n-gram with a benchmark problem.
4. ``duplicate`` (same system, user and assistant text) then ``near_duplicate`` (same
   ``decontam.near_duplicate_key`` of user + assistant text): the copy from the earliest PACE stage,
   then the smallest id, stays.
5. ``cap``: more than the per-problem cap of that kind (``pace.select_with_caps``, seeded by id).

Because fates do not depend on the set, the cumulative sets nest (heal-1 within heal-2 within
heal-3) and a sample is in every set whose kinds include its kind. A set's counters count every
sample of the run once: ``kept``, ``dropped_<fate>``, or ``dropped_not_in_set`` for kinds the set
does not train on.

    table = assign_fates(pool.table, (ratios, nlls), contaminated, cfg, PureConfig())
    kept, counters = select_set(table, SetSpec("heal-2", "cumulative", 2), cumulative=True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from heal_batch.method.pace import (
    STAGE_OF_KIND,
    select_with_caps,
    stage_of,
    stages_containing,
)
from heal_batch.method.pure import PureConfig, ScoredCandidate, decide

if TYPE_CHECKING:
    import polars as pl

    from heal_batch.stages.curriculum.stage import CurriculumConfig

KEPT = "kept"
NOT_SCORED = "not_scored"
HEAL_SETS = ("heal-1", "heal-2", "heal-3")
BASELINE_MODES = {"rs": "stage-I-only", "flat": "flat"}


@dataclass(frozen=True)
class SetSpec:
    """One training set: its name, the PACE mode it belongs to and its stage in that mode."""

    name: str
    mode: str
    stage: int


def set_specs(baselines: Sequence[str]) -> list[SetSpec]:
    """heal-1..3 (cumulative stages I-III), then one set per baseline name, in task order."""
    specs = [SetSpec(name, "cumulative", i + 1) for i, name in enumerate(HEAL_SETS)]
    for name in baselines:
        if name not in BASELINE_MODES:
            valid = ", ".join(BASELINE_MODES)
            raise ValueError(f"curriculum.baselines: unknown baseline {name!r}; valid: {valid}")
        specs.append(SetSpec(name, BASELINE_MODES[name], 1))
    return specs


def kinds_in(spec: SetSpec, cumulative: bool = True) -> tuple[str, ...]:
    """Sample kinds a set trains on; ``cumulative=False`` gives heal-N only stage N's kind."""
    if spec.mode == "cumulative" and not cumulative:
        return tuple(k for k in STAGE_OF_KIND if stage_of(k) == spec.stage)
    return tuple(k for k in STAGE_OF_KIND if spec.stage in stages_containing(k, spec.mode))


def assign_fates(
    table: pl.DataFrame,
    references: tuple[Sequence[float], Sequence[float]],
    contaminated: Iterable[str],
    cfg: CurriculumConfig,
    pure: PureConfig,
) -> pl.DataFrame:
    """``table`` (``rows.read_pool``'s: sorted by stage, then id) with a ``fate`` column.
    ``references``: the reference trajectories' ratios and answer NLLs. Columns are added, never
    copied: the light table is held once (plus the PURE pool and the rows over a cap)."""
    import polars as pl

    ids, reasons = _pure_fates(table, references, pure)
    decided = pl.col("id").replace_strict(ids, reasons, default=None, return_dtype=pl.String)
    bad = sorted(set(contaminated))
    table = table.with_columns(pure_fate=decided).with_columns(
        fate=pl.when(~pl.col("correct"))
        .then(pl.lit("incorrect"))
        .when(pl.col("pure_fate").is_not_null() & (pl.col("pure_fate") != KEPT))
        .then(pl.col("pure_fate"))
        .when(pl.col("problem_id").is_in(bad))
        .then(pl.lit("contaminated"))
    )
    table = _mark_first(table, "exact_key", "duplicate")
    if cfg.near_dedup:
        table = _mark_first(table, "near_key", "near_duplicate")
    table = _apply_caps(table, cfg)
    return table.with_columns(fate=pl.col("fate").fill_null(KEPT)).drop("pure_fate")


def select_set(
    table: pl.DataFrame, spec: SetSpec, cumulative: bool = True
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The set's kept rows (stage, problem_id, id, kind and where the texts are: shard, line,
    size), sorted by stage, problem, id, and its counters."""
    import polars as pl

    kinds = list(kinds_in(spec, cumulative))
    member = pl.col("kind").is_in(kinds)
    reason = pl.when(~member).then(pl.lit("not_in_set")).otherwise(pl.col("fate"))
    counts = table.select(reason.alias("r")).group_by("r").len()
    counters: dict[str, int] = {"total": table.height}
    for r, n in counts.iter_rows():
        counters["kept" if r == KEPT else f"dropped_{r}"] = n
    counters.setdefault("kept", 0)
    kept = table.filter(member & (pl.col("fate") == KEPT))
    kept = kept.select("stage", "problem_id", "id", "kind", "shard", "line", "size").sort(
        "stage", "problem_id", "id"
    )
    for kind, n in kept.group_by("kind").len().iter_rows():
        counters[f"kept_{kind}"] = n
    return kept, counters


def _pure_fates(
    table: pl.DataFrame, references: tuple[Sequence[float], Sequence[float]], pure: PureConfig
) -> tuple[list[str], list[str]]:
    """(ids, PURE reasons) of every correct candidate of a kind in ``pure.kinds``."""
    import polars as pl

    ref_ratios, ref_nlls = references
    columns = ("id", "ratio", "answer_nll", "unscored_reason", "scored", "reasoning_tokens")
    pool = table.filter(pl.col("kind").is_in(list(pure.kinds)) & pl.col("correct"))
    groups = [pool] if pure.pooling == "together" else list(pool.partition_by("kind"))
    ids: list[str] = []
    fates: list[str] = []
    for group in groups:
        candidates = [
            ScoredCandidate(
                cid, ratio, None, nll, reason or (None if scored else NOT_SCORED), tokens
            )
            for cid, ratio, nll, reason, scored, tokens in group.select(*columns).iter_rows()
        ]
        for d in decide(candidates, ref_ratios, pure, ref_nlls):
            ids.append(d.candidate_id)
            fates.append(d.reason)
    return ids, fates


def _mark_first(table: pl.DataFrame, key: str, reason: str) -> pl.DataFrame:
    """Among rows still alive, every row but the first (in table order) of each key drops."""
    import polars as pl

    alive = pl.col("fate").is_null()
    first = pl.col(key).is_first_distinct().over(alive)
    return table.with_columns(
        fate=pl.when(alive & ~first).then(pl.lit(reason)).otherwise(pl.col("fate"))
    )


def _apply_caps(table: pl.DataFrame, cfg: CurriculumConfig) -> pl.DataFrame:
    """Rows of a kind beyond its per-problem cap drop with ``cap`` (seeded choice by id).

    Only the rows of (kind, problem) groups over their cap reach ``select_with_caps``: a group
    within its cap keeps every row, so the light table never becomes Python rows wholesale.
    """
    import polars as pl

    pace = cfg.pace()
    alive = table.filter(pl.col("fate").is_null()).select("id", "kind", "problem_id")
    capped: list[str] = []
    for kind in STAGE_OF_KIND:
        cap = pace.cap_for(kind)
        if cap is None:
            continue
        rows = alive.filter(pl.col("kind") == kind)
        over = rows.filter(pl.len().over("problem_id") > cap).rows()
        kept = select_with_caps(over, lambda r: r[2], cap, seed=pace.seed, ident=lambda r: r[0])
        capped += sorted({r[0] for r in over} - {r[0] for r in kept})
    return table.with_columns(
        fate=pl.when(pl.col("id").is_in(capped)).then(pl.lit("cap")).otherwise(pl.col("fate"))
    )
