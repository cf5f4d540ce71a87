"""Data order: deterministic, sharded across ranks, independent of the rank/micro-batch split."""

from __future__ import annotations

from collections import Counter

import pytest

from heal_batch.training.batches import BatchPlan


def test_each_epoch_covers_every_row_and_wraps_the_short_last_batch():
    plan = BatchPlan(num_rows=10, seed=3, world_size=2, per_device_batch=2, grad_accum=1)
    assert plan.steps_per_epoch == 3
    seen = [row for step in range(3) for row in plan.global_rows(step)]
    assert len(seen) == 12 and set(seen) == set(range(10))
    assert max(Counter(seen).values()) == 2  # two rows repeat to fill the last global batch
    assert plan.global_rows(3) != plan.global_rows(0)  # next epoch reshuffles
    assert plan.position(4) == (1, 1)


def test_ranks_get_disjoint_shards_of_the_global_batch():
    plan = BatchPlan(num_rows=64, seed=0, world_size=4, per_device_batch=2, grad_accum=2)
    for step in range(plan.steps_per_epoch):
        shards = [[r for mb in plan.micro_batches(step, rank) for r in mb] for rank in range(4)]
        assert sorted(r for shard in shards for r in shard) == sorted(plan.global_rows(step))
        assert all(len(s) == 4 for s in shards)


def test_split_over_ranks_or_micro_batches_sees_the_same_rows():
    two_ranks = BatchPlan(num_rows=9, seed=5, world_size=2, per_device_batch=1, grad_accum=1)
    one_rank = BatchPlan(num_rows=9, seed=5, world_size=1, per_device_batch=1, grad_accum=2)
    for step in range(10):
        assert two_ranks.global_rows(step) == one_rank.global_rows(step)
        assert sorted(
            two_ranks.micro_batches(step, 0) + two_ranks.micro_batches(step, 1)
        ) == sorted(one_rank.micro_batches(step, 0))


def test_order_depends_on_the_seed_only():
    a = BatchPlan(num_rows=50, seed=1, world_size=1, per_device_batch=5, grad_accum=1)
    b = BatchPlan(num_rows=50, seed=1, world_size=1, per_device_batch=5, grad_accum=1)
    c = BatchPlan(num_rows=50, seed=2, world_size=1, per_device_batch=5, grad_accum=1)
    assert a.global_rows(7) == b.global_rows(7) != c.global_rows(7)
    assert a.total_steps(epochs=3, max_steps=None) == 30 and a.total_steps(3, max_steps=4) == 4


def test_no_rows_is_an_error():
    with pytest.raises(ValueError, match="no training rows"):
        BatchPlan(num_rows=0, seed=0, world_size=1, per_device_batch=1, grad_accum=1)
