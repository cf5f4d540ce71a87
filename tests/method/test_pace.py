from __future__ import annotations

import random

import pytest

from heal_batch.method.pace import (
    PaceConfig,
    bucket,
    select_with_caps,
    stage_of,
    stages_containing,
    training_stages,
)


@pytest.mark.parametrize(
    ("n_correct", "k", "expected"),
    [
        (30, 30, "easy"),
        (15, 30, "easy"),
        (14, 30, "hard"),
        (2, 30, "hard"),
        (1, 30, "corner"),
        (0, 30, "corner"),
        (1, 2, "easy"),
        (0, 1, "corner"),
        (2, 4, "easy"),
        (1, 4, "corner"),
    ],
)
def test_buckets_at_the_thresholds(n_correct, k, expected):
    assert bucket(n_correct, k) == expected


def test_bucket_thresholds_are_configurable_and_inputs_checked():
    assert bucket(1, 30, PaceConfig(corner_max_correct=0)) == "hard"
    assert bucket(0, 30, PaceConfig(corner_max_correct=0)) == "corner"
    assert bucket(9, 30, PaceConfig(easy_min_pass_rate=0.3)) == "easy"
    assert bucket(8, 30, PaceConfig(easy_min_pass_rate=0.3)) == "hard"
    for bad in ((5, 4), (-1, 4), (0, 0)):
        with pytest.raises(ValueError, match="n_correct"):
            bucket(*bad)


def test_stages_of_kinds_and_modes():
    assert [stage_of(k) for k in ("natural", "answer_guided", "repair")] == [1, 2, 3]
    with pytest.raises(ValueError, match="natural, answer_guided, repair"):
        stage_of("synthetic")
    assert training_stages("cumulative") == (1, 2, 3)
    assert training_stages("flat") == training_stages("stage-I-only") == (1,)
    assert stages_containing("natural", "cumulative") == (1, 2, 3)
    assert stages_containing("repair", "cumulative") == (3,)
    assert stages_containing("repair", "flat") == (1,)
    assert stages_containing("answer_guided", "stage-I-only") == ()
    assert stages_containing("natural", "stage-I-only") == (1,)
    with pytest.raises(ValueError, match="cumulative, flat, stage-I-only"):
        training_stages("mixed")


def test_config_validation_and_caps():
    cfg = PaceConfig()
    assert (cfg.cap_for("natural"), cfg.cap_for("repair")) == (None, 4)
    with pytest.raises(ValueError, match="pace.mode"):
        PaceConfig(mode="mixed")
    with pytest.raises(ValueError, match="repair"):
        PaceConfig(max_repairs_per_problem=-1)


ITEMS = [
    {"problem": p, "id": f"{p}-{i}"}
    for p in ("a", "b", "c")
    for i in range({"a": 7, "b": 2, "c": 5}[p])
]


def _select(items, cap, seed=0, ident=True):
    return select_with_caps(
        items, lambda r: r["problem"], cap, seed=seed, ident=(lambda r: r["id"]) if ident else None
    )


def test_caps_limit_each_problem_and_keep_input_order():
    kept = _select(ITEMS, 3)
    counts = {p: sum(r["problem"] == p for r in kept) for p in "abc"}
    assert counts == {"a": 3, "b": 2, "c": 3}
    assert kept == [r for r in ITEMS if r in kept]
    assert _select(ITEMS, None) == ITEMS
    assert _select(ITEMS, 0) == []
    with pytest.raises(ValueError, match="cap"):
        _select(ITEMS, -1)


def test_caps_are_deterministic_seeded_and_order_independent_with_ids():
    assert _select(ITEMS, 3) == _select(ITEMS, 3)
    picks = {tuple(r["id"] for r in _select(ITEMS, 3, seed=s)) for s in range(10)}
    assert len(picks) > 1
    shuffled = ITEMS[:]
    random.Random(3).shuffle(shuffled)
    assert {r["id"] for r in _select(shuffled, 3)} == {r["id"] for r in _select(ITEMS, 3)}
    assert _select(ITEMS, 3, ident=False) == _select(ITEMS, 3, ident=False)
