"""Progress of running tasks, for the person watching ``heal-batch run``.

A task reports how far it is (``report``: done/total units, e.g. problems) into a small JSON file in
its scratch folder; the local executor's wait loop reads those files and draws one tqdm bar per
stage: tasks finished, plus the units done by the tasks still running; ``heal-batch status`` turns
them into tokens/s and an ETA (:func:`rates`). Reports are advisory (a missing or half-written file
shows as no progress), never read by the pipeline itself.

A report also keeps the rate of this attempt: units and tokens of chunks *computed* by this process
(``computed=True``; chunks loaded from a previous attempt's scratch take no time and are left out)
over the seconds since this process's first report (``start``).

    start(io.scratch, total=12, unit="problems")
    report(io.scratch, done=8, total=12, unit="problems", tokens=5120, computed=True)
    bar = StageBar("generate", n_tasks=2); bar.update(finished=1, running=[scratch_1]); bar.close()
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import write_text_atomic

FILE = "progress.json"


def start(scratch: Path, total: int, unit: str) -> None:
    """Mark the start of this attempt: its rate is measured from now (done is kept, or 0)."""
    prev = read(scratch)
    done = int(prev["done"]) if prev and prev.get("total") == total else 0
    _write(
        scratch,
        {
            "done": done,
            "total": total,
            "unit": unit,
            "pid": os.getpid(),
            "since": time.time(),
            "busy_units": 0,
            "busy_tokens": 0,
            "tokens": 0,
        },
    )


def report(
    scratch: Path, done: int, total: int, unit: str, tokens: int = 0, computed: bool = False
) -> None:
    """Record that ``done`` of ``total`` ``unit`` of this task are finished; ``tokens`` (in + out)
    and the units since the last report count towards this attempt's rate when ``computed``."""
    prev = read(scratch) or {}
    same = prev.get("pid") == os.getpid() and "since" in prev
    busy_units = int(prev.get("busy_units", 0)) if same else 0
    busy_tokens = int(prev.get("busy_tokens", 0)) if same else 0
    if computed and same:
        busy_units += max(done - int(prev["done"]), 0)
        busy_tokens += tokens
    _write(
        scratch,
        {
            "done": done,
            "total": total,
            "unit": unit,
            "pid": os.getpid(),
            "since": prev["since"] if same else time.time(),
            "busy_units": busy_units,
            "busy_tokens": busy_tokens,
            "tokens": int(prev.get("tokens", 0)) + tokens,
            "t": time.time(),
        },
    )


def rates(rep: dict[str, Any], now: float | None = None) -> tuple[float, float] | None:
    """(units/s, tokens/s) of a report's attempt so far, or None before it has computed a chunk."""
    try:
        elapsed = (now or time.time()) - float(rep["since"])
        units, tokens = int(rep["busy_units"]), int(rep["busy_tokens"])
    except (KeyError, TypeError, ValueError):
        return None
    return (units / elapsed, tokens / elapsed) if units > 0 and elapsed > 0 else None


def _write(scratch: Path, data: dict[str, Any]) -> None:
    write_text_atomic(scratch / FILE, json.dumps(data))


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
