"""``heal-batch report``: a self-contained markdown + HTML report of one run folder.

Input: a work directory (as written by ``heal-batch run``; any subset of stages may have run).
Output: ``<workdir>/report/report.md`` with its PNG figures beside it, and
``<workdir>/report/report.html`` with the same figures embedded (base64), so the HTML file alone
is the report. Sections, in order: What HEAL added, Stages, Counts and drop reasons, Teacher
pass rates, Corner cases: repaired and kept by PURE, Entropy curves and breakpoints, Curriculum
composition, Training loss, Evaluation. A section whose stage has not run says "Not run yet".

The report reads what the refs point at (the runs of the config last launched in that folder)
and never writes to manifests or receipts.

    from heal_batch.report import write_report
    html = write_report(Path("runs/demo"))   # runs/demo/report/report.html

Modules: collect (run folder -> RunData), records (record streams -> small summaries), sections
(RunData -> sections), evaltable (the evaluation section), plots (PNG figures), render (md/html).
Importing this package is light; matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

REPORT_DIR = "report"


def write_report(workdir: Path) -> Path:
    """Write ``<workdir>/report/report.{md,html}`` (+ PNGs); returns the HTML file's path."""
    from heal_batch.report.collect import collect
    from heal_batch.report.render import write_files
    from heal_batch.report.sections import build_sections

    workdir = Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(
            f"{workdir}: no such run folder (give --workdir of a `heal-batch run`)"
        )
    data = collect(workdir)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"Run folder {workdir.resolve()} · generated {stamp}"
    return write_files(build_sections(data), workdir / REPORT_DIR, "HEAL run report", subtitle)
