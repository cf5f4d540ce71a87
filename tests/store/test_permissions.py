"""Files of a run folder get the umask's permissions (0644 under 022), not mkstemp's 0600."""

import os
import stat

import pytest

from heal_batch.cli import main
from heal_batch.store.layout import Layout
from tests.fixtures.toy_stage import ingest_run_args, write_problems


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)

    previous = os.umask(0o022)
    yield set_mask
    os.umask(previous)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_store_receipts_manifests_refs_and_report_honour_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    problems = write_problems(tmp_path / "p.jsonl", n=4)
    workdir = tmp_path / "run"
    assert main(ingest_run_args(workdir, problems, 2)) == 0
    layout = Layout(workdir)
    key = layout.read_ref("ingest")
    files = [
        layout.receipt("ingest", key, 0),
        layout.manifest("ingest", key),
        layout.ref("ingest"),
        workdir / "report" / "report.html",
        workdir / "report" / "report.md",
        *layout.store.glob("*/*.jsonl.zst"),
    ]
    modes = {str(f.relative_to(workdir)): oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
    assert set(modes.values()) == {oct(mode)}, modes
