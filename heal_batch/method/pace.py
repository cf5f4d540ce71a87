"""PACE curriculum rules: difficulty buckets, which stage a sample belongs to, per-problem caps.

Inputs: counts of correct teacher samples, sample kinds, lists of records. Outputs: bucket names,
stage numbers, capped lists. Decontamination and near-duplicate keys are in ``decontam.py``.

- Buckets from k teacher samples with c correct: ``easy`` if c/k >= 0.5, else ``corner`` if
  c <= 1, else ``hard`` (easy is tested first, so c=1 of k=2 is easy).
- Sample kinds and the stage that introduces them: ``natural`` (correct teacher samples, stage I),
  ``answer_guided`` (answer-in-prompt samples for hard problems, stage II), ``repair`` (PURE-kept
  GEAR repairs for corner cases, stage III).
- Modes: ``cumulative`` trains stages 1, 2, 3 in order, stage t on every kind introduced at or
  before t; ``flat`` trains one stage on everything; ``stage-I-only`` trains one stage on natural
  samples only (the rejection-sampling SFT baseline).

Example::

    >>> bucket(1, 30), bucket(2, 30), bucket(15, 30)
    ('corner', 'hard', 'easy')
    >>> stages_containing("answer_guided", "cumulative")
    (2, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from heal_batch.method.seeds import stable_seed

Bucket = Literal["easy", "hard", "corner"]
SampleKind = Literal["natural", "answer_guided", "repair"]
CurriculumMode = Literal["cumulative", "flat", "stage-I-only"]

STAGE_OF_KIND: dict[str, int] = {"natural": 1, "answer_guided": 2, "repair": 3}
MODES: tuple[str, ...] = ("cumulative", "flat", "stage-I-only")
# Which extra samples a problem in each bucket gets generated for it.
AUGMENTATION_FOR_BUCKET: dict[str, str | None] = {
    "easy": None,
    "hard": "answer_guided",
    "corner": "repair",
}

T = TypeVar("T")


class BucketThresholds(Protocol):
    """Where the bucket thresholds come from: ``PaceConfig`` or the pipeline's ``repair``
    section (repair buckets the problems first; curriculum must agree with it)."""

    @property
    def easy_min_pass_rate(self) -> float: ...

    @property
    def corner_max_correct(self) -> int: ...


@dataclass(frozen=True)
class PaceConfig:
    """PACE curriculum settings.

    Args:
        easy_min_pass_rate: a problem is easy when its teacher pass rate is at least this.
        corner_max_correct: a non-easy problem with at most this many correct samples is a corner
            case.
        mode: cumulative (stages I, II, III in order on growing data), flat (one stage, all data)
            or stage-I-only (the rejection-sampling SFT baseline).
        max_natural_per_problem: cap on correct teacher samples kept per problem (null: no cap).
        max_answer_guided_per_problem: cap on answer-guided samples kept per problem (null: no cap).
        max_repairs_per_problem: cap on repaired samples kept per problem (null: no cap).
        seed: seed of the deterministic choice of which samples a cap keeps.
    """

    easy_min_pass_rate: float = 0.5
    corner_max_correct: int = 1
    mode: CurriculumMode = "cumulative"
    max_natural_per_problem: int | None = None
    max_answer_guided_per_problem: int | None = 4
    max_repairs_per_problem: int | None = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.easy_min_pass_rate <= 1:
            raise ValueError(
                f"pace.easy_min_pass_rate must be in (0, 1], got {self.easy_min_pass_rate}"
            )
        if self.corner_max_correct < 0:
            raise ValueError(f"pace.corner_max_correct must be >= 0, got {self.corner_max_correct}")
        if self.mode not in MODES:
            raise ValueError(f"pace.mode {self.mode!r} is not one of: {', '.join(MODES)}")
        for kind in STAGE_OF_KIND:
            cap = self.cap_for(kind)
            if cap is not None and cap < 0:
                raise ValueError(f"pace cap for {kind} must be >= 0 or null, got {cap}")

    def cap_for(self, kind: str) -> int | None:
        """The per-problem cap for samples of ``kind`` (None: no cap)."""
        stage_of(kind)
        return {
            "natural": self.max_natural_per_problem,
            "answer_guided": self.max_answer_guided_per_problem,
            "repair": self.max_repairs_per_problem,
        }[kind]


def bucket(n_correct: int, k: int, cfg: PaceConfig | None = None) -> Bucket:
    """Difficulty bucket of a problem with ``n_correct`` correct out of ``k`` teacher samples."""
    cfg = cfg or PaceConfig()
    if k < 1 or not 0 <= n_correct <= k:
        raise ValueError(f"need 0 <= n_correct <= k and k >= 1, got n_correct={n_correct}, k={k}")
    if n_correct / k >= cfg.easy_min_pass_rate:
        return "easy"
    if n_correct <= cfg.corner_max_correct:
        return "corner"
    return "hard"


def stage_of(kind: str) -> int:
    """The PACE stage that introduces samples of ``kind`` (1, 2 or 3)."""
    try:
        return STAGE_OF_KIND[kind]
    except KeyError:
        raise ValueError(
            f"unknown sample kind {kind!r}; valid: {', '.join(STAGE_OF_KIND)}"
        ) from None


def training_stages(mode: str) -> tuple[int, ...]:
    """The training stages that run in ``mode``, in order."""
    _check_mode(mode)
    return (1, 2, 3) if mode == "cumulative" else (1,)


def stages_containing(kind: str, mode: str) -> tuple[int, ...]:
    """The training stages whose data include samples of ``kind`` (empty: never trained on)."""
    stage = stage_of(kind)
    _check_mode(mode)
    if mode == "cumulative":
        return tuple(t for t in (1, 2, 3) if t >= stage)
    if mode == "flat":
        return (1,)
    return (1,) if kind == "natural" else ()


def select_with_caps(
    items: Iterable[T],
    group: Callable[[T], Hashable],
    cap: int | None,
    *,
    seed: int = 0,
    ident: Callable[[T], str] | None = None,
) -> list[T]:
    """Keep at most ``cap`` items per ``group(item)``; the kept items stay in input order.

    Which items a full group keeps is a seeded pseudo-random choice. With ``ident`` (a unique,
    stable id per item) it depends only on (seed, group, id), so the result is the same whatever
    order shards are concatenated in; without it, it depends on positions within each group.
    ``cap=None`` keeps everything.
    """
    items = list(items)
    if cap is None:
        return items
    if cap < 0:
        raise ValueError(f"cap must be >= 0 or None, got {cap}")
    groups: dict[Hashable, list[int]] = {}
    for pos, item in enumerate(items):
        groups.setdefault(group(item), []).append(pos)
    keep: set[int] = set()
    for key, positions in groups.items():
        if len(positions) <= cap:
            keep.update(positions)
            continue
        rank = {
            pos: stable_seed(seed, key, ident(items[pos]) if ident else rank_in_group)
            for rank_in_group, pos in enumerate(positions)
        }
        keep.update(sorted(positions, key=lambda p: (rank[p], p))[:cap])
    return [item for pos, item in enumerate(items) if pos in keep]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown curriculum mode {mode!r}; valid: {', '.join(MODES)}")
