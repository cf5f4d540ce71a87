"""The report's compute table: CPU-/GPU-hours and tokens/s per stage from a fake run's receipts."""

from __future__ import annotations

import dataclasses

import pytest

from heal_batch.report import write_report
from heal_batch.report.collect import collect
from heal_batch.report.hours import device_count, stage_hours
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import read_receipts, write_receipt
from tests.report.test_report import make_run, sections_of


@pytest.fixture
def full_run(tmp_path, monkeypatch):
    return make_run(tmp_path, monkeypatch)


def _set_receipts(run, stage: str, **fields) -> None:
    layout = Layout(run)
    key = layout.read_ref(stage)
    for receipt in read_receipts(layout, stage, key).values():
        write_receipt(layout, dataclasses.replace(receipt, **fields))


def test_device_count():
    assert device_count("cpu") == ("cpu", 1)
    assert device_count(None) == ("cpu", 1)
    assert device_count("4 x NVIDIA H200") == ("gpu", 4)
    assert device_count("0 x weird") == ("cpu", 1)


def test_hours_are_seconds_times_devices(full_run):
    _set_receipts(
        full_run,
        "generate",
        device="2 x NVIDIA H200",
        seconds=1800.0,
        counters={"total": 1, "kept": 1, "tokens_out": 9000},
    )
    _set_receipts(full_run, "score", device="cpu", seconds=360.0, counters={"tokens_in": 720})
    data = collect(full_run)
    hours = {
        h.stage: h for h in stage_hours(full_run, {n: r.run_key for n, r in data.stages.items()})
    }
    gen, score = hours["generate"], hours["score"]
    assert (gen.gpu_hours, gen.cpu_hours) == (gen.tasks * 1.0, 0.0)
    assert gen.tokens_per_s == 9000 / 1800
    assert (score.cpu_hours, score.gpu_hours) == (score.tasks * 0.1, 0.0)
    assert score.tokens_per_s == 2.0
    assert hours["curriculum"].tokens_per_s is None


def test_report_shows_the_compute_table(full_run):
    _set_receipts(full_run, "generate", device="1 x NVIDIA H100", seconds=3600.0)
    write_report(full_run)
    md = (full_run / "report" / "report.md").read_text()
    stages = next(text for title, text in sections_of(md).items() if "GPU-hours" in text)
    assert "| CPU-hours | GPU-hours |" in stages
    tasks = collect(full_run).stages["generate"].tasks
    gen_rows = [line for line in stages.splitlines() if line.startswith("| generate |")]
    assert any(f"| {tasks} | 0.000 | {tasks:.3f} |" in line for line in gen_rows), gen_rows
