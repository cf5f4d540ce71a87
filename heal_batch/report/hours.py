"""Compute spent per stage: CPU-/GPU-hours and tokens/s, from the receipts of each stage run.

A receipt's ``device`` is ``"cpu"`` or ``"<n> x <GPU name>"``; a task's hours are its seconds times
its device count (1 for a CPU task), on the GPU side when it held GPUs. Tokens/s is the stage's
``tokens_in + tokens_out`` counters over its summed task seconds (model loading included).

    hours_table(collect(Path("runs/demo")))   # Table: stage, tasks, CPU-hours, GPU-hours, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heal_batch.report.render import Table
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import read_receipts


@dataclass
class StageHours:
    stage: str
    tasks: int
    cpu_hours: float
    gpu_hours: float
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.seconds if self.tokens and self.seconds > 0 else None


def device_count(device: str | None) -> tuple[str, int]:
    """("cpu" | "gpu", count) of a receipt's device text; unknown or malformed counts as 1 CPU."""
    count, sep, _ = (device or "cpu").partition(" x ")
    if sep and count.strip().isdigit() and int(count) > 0:
        return "gpu", int(count)
    return "cpu", 1


def stage_hours(workdir: Path, runs: dict[str, str]) -> list[StageHours]:
    """Hours of each stage run (``{stage: run_key}``), from every current receipt (done or
    failed: a failed attempt spent its compute too)."""
    layout = Layout(workdir)
    rows = []
    for stage, key in runs.items():
        row = StageHours(stage, 0, 0.0, 0.0, 0, 0.0)
        for receipt in read_receipts(layout, stage, key).values():
            kind, n = device_count(receipt.device)
            hours = receipt.seconds * n / 3600
            row.tasks += 1
            row.seconds += receipt.seconds
            row.gpu_hours += hours if kind == "gpu" else 0.0
            row.cpu_hours += hours if kind == "cpu" else 0.0
            counters = receipt.counters
            row.tokens += int(counters.get("tokens_in", 0) + counters.get("tokens_out", 0))
        rows.append(row)
    return rows


def hours_table(data) -> Table:
    """The compute table of a report's :class:`~heal_batch.report.collect.RunData`."""
    runs = {name: run.run_key for name, run in data.stages.items()}
    rows = [
        [
            h.stage,
            h.tasks,
            f"{h.cpu_hours:.3f}",
            f"{h.gpu_hours:.3f}",
            h.tokens or "",
            f"{h.tokens_per_s:,.1f}" if h.tokens_per_s else "",
        ]
        for h in stage_hours(data.workdir, runs)
    ]
    return Table(["stage", "tasks", "CPU-hours", "GPU-hours", "tokens", "tokens/s"], rows)
