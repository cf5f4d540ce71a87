"""The PACE training sets from one pooled table of samples: every sample's fate, then each set.

Inputs: sample rows (one per natural trajectory and per scored candidate, built by
``curriculum.py``), the PURE scores of the reference trajectories (``ScoredCandidate``s: ratio and
answer NLL), the contaminated problem ids and the config.
Output: the row table (polars) with a ``fate`` column, ``"kept"`` or the first rule that dropped
the sample, and per set the kept rows plus counters.

Fates are decided once for the whole pool, in this order (first match wins):

1. ``incorrect``: a natural trajectory whose answer was wrong (rejection sampling).
2. PURE (kinds in ``pure_kinds``): ``pure.decide`` over ALL scored candidates of the run, pooled
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

    table = assign_fates(rows, references, contaminated, cfg)
    kept, counters = select_set(table, SetSpec("heal-2", "cumulative", 2), cumulative=True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
ROW_SCHEMA = {
    "id": "str",
    "kind": "str",
    "problem_id": "str",
    "problem": "str",
    "bucket": "str",
    "system": "str",
    "user": "str",
    "assistant": "str",
    "correct": "bool",
    "scored": "bool",
    "ratio": "f64",
    "answer_nll": "f64",
    "reasoning_tokens": "i64",
    "unscored_reason": "str",
    "exact_key": "str",
    "near_key": "str",
}


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
            raise ValueError(
                f"curriculum.baselines: unknown baseline {name!r}; valid: {', '.join(BASELINE_MODES)}"
            )
        specs.append(SetSpec(name, BASELINE_MODES[name], 1))
    return specs


def kinds_in(spec: SetSpec, cumulative: bool = True) -> tuple[str, ...]:
    """Sample kinds a set trains on; ``cumulative=False`` gives heal-N only stage N's kind."""
    if spec.mode == "cumulative" and not cumulative:
        return tuple(k for k in STAGE_OF_KIND if stage_of(k) == spec.stage)
    return tuple(k for k in STAGE_OF_KIND if spec.stage in stages_containing(k, spec.mode))


def assign_fates(
    rows: list[dict[str, Any]],
    references: Sequence[ScoredCandidate],
    contaminated: Iterable[str],
    cfg: CurriculumConfig,
) -> pl.DataFrame:
    """The pooled table with ``stage`` and ``fate`` columns, sorted by (stage, id)."""
    import polars as pl

    table = pl.DataFrame(rows, schema=_schema())
    table = table.with_columns(
        stage=pl.col("kind").replace_strict(STAGE_OF_KIND, return_dtype=pl.Int8)
    ).sort("stage", "id")
    pure = _pure_fates(table, references, cfg)
    bad = sorted(set(contaminated))
    table = table.join(pure, on="id", how="left", maintain_order="left").with_columns(
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
    """The set's kept rows (sorted by stage, problem, id) and its counters."""
    import polars as pl

    kinds = list(kinds_in(spec, cumulative))
    member = pl.col("kind").is_in(kinds)
    reason = pl.when(~member).then(pl.lit("not_in_set")).otherwise(pl.col("fate"))
    counts = table.select(reason.alias("r")).group_by("r").len()
    counters: dict[str, int] = {"total": table.height}
    for r, n in counts.iter_rows():
        counters["kept" if r == KEPT else f"dropped_{r}"] = n
    counters.setdefault("kept", 0)
    kept = table.filter(member & (pl.col("fate") == KEPT)).sort("stage", "problem_id", "id")
    for kind, n in kept.group_by("kind").len().iter_rows():
        counters[f"kept_{kind}"] = n
    return kept, counters


def _schema() -> dict:
    import polars as pl

    types = {"str": pl.String, "bool": pl.Boolean, "f64": pl.Float64, "i64": pl.Int64}
    return {name: types[t] for name, t in ROW_SCHEMA.items()}


def _pure_fates(
    table: pl.DataFrame, references: Sequence[ScoredCandidate], cfg: CurriculumConfig
) -> pl.DataFrame:
    """id -> PURE reason for every correct candidate of a kind in ``pure_kinds``."""
    import polars as pl

    pure_cfg = PureConfig(
        drop_top_fraction=cfg.pure_drop_top_fraction,
        reference_percentile=cfg.pure_reference_percentile,
        min_reasoning_tokens=cfg.pure_min_reasoning_tokens,
        answer_reference_percentile=cfg.pure_answer_reference_percentile,
    )
    ref_ratios = [r.ratio for r in references if r.ratio is not None]
    ref_nlls = [r.answer_nll for r in references if r.answer_nll is not None]
    columns = ("id", "ratio", "answer_nll", "reasoning_tokens", "unscored_reason", "scored")
    pool = table.filter(pl.col("kind").is_in(list(cfg.pure_kinds)) & pl.col("correct"))
    groups = [pool] if cfg.pure_pooling == "together" else list(pool.partition_by("kind"))
    ids: list[str] = []
    fates: list[str] = []
    for group in groups:
        candidates = [
            ScoredCandidate(
                r["id"],
                r["ratio"],
                answer_nll=r["answer_nll"],
                unscored_reason=r["unscored_reason"] or (None if r["scored"] else NOT_SCORED),
                reasoning_tokens=r["reasoning_tokens"],
            )
            for r in group.select(*columns).iter_rows(named=True)
        ]
        for d in decide(candidates, ref_ratios, pure_cfg, ref_nlls):
            ids.append(d.candidate_id)
            fates.append(d.reason)
    return pl.DataFrame(
        {"id": ids, "pure_fate": fates}, schema={"id": pl.String, "pure_fate": pl.String}
    )


def _mark_first(table: pl.DataFrame, key: str, reason: str) -> pl.DataFrame:
    """Among rows still alive, every row but the first (in table order) of each key drops."""
    import polars as pl

    alive = pl.col("fate").is_null()
    first = pl.col(key).is_first_distinct().over(alive)
    return table.with_columns(
        fate=pl.when(alive & ~first).then(pl.lit(reason)).otherwise(pl.col("fate"))
    )


def _apply_caps(table: pl.DataFrame, cfg: CurriculumConfig) -> pl.DataFrame:
    """Rows of a kind beyond its per-problem cap drop with ``cap`` (seeded choice by id)."""
    import polars as pl

    pace = cfg.pace()
    alive = table.filter(pl.col("fate").is_null()).select("id", "kind", "problem_id")
    capped: list[str] = []
    for kind in STAGE_OF_KIND:
        rows = alive.filter(pl.col("kind") == kind).rows()
        kept = select_with_caps(
            rows, lambda r: r[2], pace.cap_for(kind), seed=pace.seed, ident=lambda r: r[0]
        )
        capped += sorted({r[0] for r in rows} - {r[0] for r in kept})
    return table.with_columns(
        fate=pl.when(pl.col("id").is_in(capped)).then(pl.lit("cap")).otherwise(pl.col("fate"))
    )
