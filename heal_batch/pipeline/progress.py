"""Progress of running tasks, for the person watching ``heal-batch run``.

A task reports how far it is (``report``: done/total units, e.g. problems) into a small JSON file in
its scratch folder; the local executor's wait loop reads those files and draws one tqdm bar per
stage: tasks finished, plus the units done by the tasks still running. Reports are advisory (a
missing or half-written file shows as no progress), never read by the pipeline itself.

    report(io.scratch, done=8, total=12, unit="problems")
    bar = StageBar("generate", n_tasks=2); bar.update(finished=1, running=[scratch_1]); bar.close()
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import write_text_atomic

FILE = "progress.json"


def report(scratch: Path, done: int, total: int, unit: str) -> None:
    """Record that ``done`` of ``total`` ``unit`` of this task are finished."""
    write_text_atomic(scratch / FILE, json.dumps({"done": done, "total": total, "unit": unit}))


def read(scratch: Path) -> dict[str, Any] | None:
    """The last report of the task with this scratch folder, or None."""
    try:
        data = json.loads((scratch / FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and {"done", "total", "unit"} <= data.keys() else None


class StageBar:
    """One stage's bar: ``generate  1/2 tasks [00:41, problems 20/24]`` (stderr, ~1 redraw/s)."""

    def __init__(self, stage: str, n_tasks: int, file=None, min_interval: float = 1.0):
        from tqdm.auto import tqdm

        self._min_interval, self._last = min_interval, float("-inf")

        self._bar = tqdm(
            total=n_tasks,
            desc=f"{stage:<15}",
            unit="task",
            file=file or sys.stderr,
            mininterval=1.0,
            bar_format="{desc} {n_fmt}/{total_fmt} tasks |{bar:20}| {elapsed}{postfix}",
        )

    def update(self, finished: int, running: Iterable[Path] = (), force: bool = False) -> None:
        """Show ``finished`` tasks and the summed reports of the running tasks' scratch folders.

        Redraws (and reads the reports) at most once per ``min_interval`` seconds unless ``force``.
        """
        if not force and time.monotonic() - self._last < self._min_interval:
            return
        self._last = time.monotonic()
        if finished > self._bar.n:
            self._bar.update(finished - self._bar.n)
        units: dict[str, list[int]] = {}
        for scratch in running:
            rep = read(scratch)
            if rep:
                sums = units.setdefault(str(rep["unit"]), [0, 0])
                sums[0] += int(rep["done"])
                sums[1] += int(rep["total"])
        postfix = ", ".join(f"{unit} {d}/{t}" for unit, (d, t) in units.items())
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
