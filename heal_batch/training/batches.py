"""Deterministic order of packed rows: which rows each rank trains on at every optimizer step.

Inputs -> outputs: the number of packed rows, seed, world size, per-device batch and gradient
accumulation -> a `BatchPlan` answering "rows of step s on rank r, micro-batch m".

Every epoch shuffles the rows with Random(f"{seed}/{epoch}") and cuts the order into global
batches of world_size x per_device_batch x grad_accum rows; an epoch whose last global batch is
short is filled with rows from the start of the same order (as DistributedSampler does), so every
rank runs the same number of micro-batches. The global batch of a step does not depend on how it
is split over ranks and micro-batches, so 2 ranks x 1 micro-batch and 1 rank x 2 micro-batches
see the same rows. Resuming needs only the step number: epoch and position follow from it.

    plan = BatchPlan(num_rows=100, seed=0, world_size=2, per_device_batch=2, grad_accum=4)
    plan.micro_batches(step=7, rank=1)   # -> [[row, row], [row, row], [row, row], [row, row]]
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    num_rows: int
    seed: int
    world_size: int
    per_device_batch: int
    grad_accum: int

    def __post_init__(self) -> None:
        if self.num_rows < 1:
            raise ValueError("no training rows: every record was empty or had no assistant tokens")

    @property
    def global_batch(self) -> int:
        return self.world_size * self.per_device_batch * self.grad_accum

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_rows / self.global_batch)

    def total_steps(self, epochs: int, max_steps: int | None) -> int:
        return max_steps if max_steps is not None else epochs * self.steps_per_epoch

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, step within epoch) of the 0-based optimizer step."""
        return divmod(step, self.steps_per_epoch)

    def global_rows(self, step: int) -> list[int]:
        """All rows of the step, in the order ranks and micro-batches slice them."""
        epoch, at = self.position(step)
        order = self._epoch_order(epoch)
        start = at * self.global_batch
        return order[start : start + self.global_batch]

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        rows = self.global_rows(step)
        per = self.per_device_batch
        return [
            rows[(m * self.world_size + rank) * per : (m * self.world_size + rank + 1) * per]
            for m in range(self.grad_accum)
        ]

    @functools.lru_cache(maxsize=2)  # noqa: B019 - the plan is small, frozen and lives one run
    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(self.num_rows))
        random.Random(f"{self.seed}/{epoch}").shuffle(order)
        need = self.steps_per_epoch * self.global_batch
        while len(order) < need:
            order += order[: need - len(order)]
        return order
