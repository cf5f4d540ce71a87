"""Task progress reports and the per-stage bar the local executor draws."""

from __future__ import annotations

import io

from heal_batch.pipeline.progress import StageBar, read, report


def test_report_round_trip_and_garbage_reads_as_none(tmp_path):
    assert read(tmp_path) is None
    report(tmp_path, 4, 12, "problems")
    got = read(tmp_path)
    assert {k: got[k] for k in ("done", "total", "unit")} == {
        "done": 4,
        "total": 12,
        "unit": "problems",
    }
    (tmp_path / "progress.json").write_text('{"done": 1')  # half-written by a crashed writer
    assert read(tmp_path) is None


def test_bar_shows_finished_tasks_and_the_running_tasks_units(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    report(a, 4, 12, "problems")
    report(b, 8, 12, "problems")
    out = io.StringIO()
    bar = StageBar("generate", 3, file=out)
    bar.update(1, [a, b])
    bar.close()
    last = out.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "1/3 tasks" in last and "problems 12/24" in last
