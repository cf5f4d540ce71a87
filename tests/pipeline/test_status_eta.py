"""heal-batch status: tokens/s and ETA of a running stage from hand-made progress files."""

from __future__ import annotations

import json
import os

from heal_batch.pipeline import progress
from heal_batch.pipeline.status import StageStatus, render, throughput
from heal_batch.store.layout import Layout

KEY = "a" * 64
NOW = 1_000_000.0


def _progress(layout: Layout, index: int, **fields) -> None:
    scratch = layout.scratch("generate", KEY, index)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / progress.FILE).write_text(json.dumps({"unit": "problems", **fields}))


def test_eta_is_units_left_over_the_summed_rate(tmp_path):
    layout = Layout(tmp_path)
    # task 0: 40 of 100 problems, 20 computed in 100 s (0.2/s, 50 tok/s)
    _progress(layout, 0, done=40, total=100, since=NOW - 100, busy_units=20, busy_tokens=5000)
    # task 1: 10 of 100 in 50 s (0.2/s, 30 tok/s)
    _progress(layout, 1, done=10, total=100, since=NOW - 50, busy_units=10, busy_tokens=1500)
    # task 2: pending, no report: counts as a mean-sized task (100 problems)
    tokens_per_s, eta = throughput(layout, "generate", KEY, [0, 1, 2], now=NOW)
    assert tokens_per_s == 80.0
    assert eta == (60 + 90 + 100) / 0.4


def test_no_rate_before_a_chunk_is_computed(tmp_path):
    layout = Layout(tmp_path)
    _progress(layout, 0, done=50, total=100, since=NOW - 5, busy_units=0, busy_tokens=0)
    assert throughput(layout, "generate", KEY, [0], now=NOW) == (None, None)
    assert throughput(layout, "generate", KEY, [], now=NOW) == (None, None)


def test_damaged_progress_file_is_no_progress(tmp_path):
    layout = Layout(tmp_path)
    scratch = layout.scratch("generate", KEY, 0)
    scratch.mkdir(parents=True)
    (scratch / progress.FILE).write_text("{half")
    assert throughput(layout, "generate", KEY, [0], now=NOW) == (None, None)


def test_report_rates_count_computed_chunks_only(tmp_path):
    progress.start(tmp_path, total=30, unit="records")
    progress.report(tmp_path, 10, 30, "records", tokens=0, computed=False)  # loaded chunk
    progress.report(tmp_path, 20, 30, "records", tokens=400, computed=True)
    rep = progress.read(tmp_path)
    assert (rep["done"], rep["busy_units"], rep["busy_tokens"]) == (20, 10, 400)
    assert rep["pid"] == os.getpid()
    units, tokens = progress.rates(rep, now=rep["since"] + 4)
    assert (units, tokens) == (2.5, 100.0)


def test_render_shows_tokens_per_second_and_eta():
    counts = {"done": 1, "running": 2, "pending": 0, "failed": 0, "missing": 0}
    row = StageStatus("generate", KEY, "m.json", False, counts, tokens_per_s=1234.4, eta_s=5400)
    line = render([row]).splitlines()[1]
    assert line.endswith("no  1,234 tok/s, ETA 1h30m")
    sealed = StageStatus("ingest", KEY, "m.json", True, {**counts, "done": 3, "running": 0})
    assert render([sealed]).splitlines()[1].endswith("yes")
