"""The real local Slurm cluster: sbatch arrays, submitit round trips, cancel, the sbatch template
and the bring-up script itself. Needs `slurm/local-cluster.sh up` (the fixture runs it)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from heal_batch.executors.slurm.profiles import load_profile
from tests.fixtures.slurm import REPO, SCRIPT, sacct_fields, sbatch, wait_for_jobs
from tests.slurm import jobs

pytestmark = pytest.mark.slurm

TASK_SCRIPT = """#!/bin/bash
echo "task $SLURM_ARRAY_TASK_ID"
if [ "$SLURM_ARRAY_TASK_ID" = 2 ]; then exit 3; fi
"""


def test_sbatch_array_reports_the_failing_element(slurm_cluster, tmp_path):
    script = tmp_path / "task.sh"
    script.write_text(TASK_SCRIPT)
    job = sbatch(
        "--array=0-3",
        f"--partition={slurm_cluster.partition}",
        "--time=1",
        "--mem=100M",
        f"--output={tmp_path}/%A_%a.out",
        str(script),
    )

    states = wait_for_jobs([job], timeout=120)

    assert states == {
        f"{job}_0": "COMPLETED",
        f"{job}_1": "COMPLETED",
        f"{job}_2": "FAILED",
        f"{job}_3": "COMPLETED",
    }
    assert sacct_fields([job], "ExitCode")[f"{job}_2"] == "3:0"
    assert (tmp_path / f"{job}_3.out").read_text() == "task 3\n"


def _executor(folder, **overrides):
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    params = load_profile("local").submitit_parameters()
    # The array task unpickles tests.slurm.jobs, so it must import from this checkout.
    params["slurm_setup"] = [f"export PYTHONPATH={REPO}${{PYTHONPATH:+:$PYTHONPATH}}"]
    executor.update_parameters(**{**params, **overrides})
    return executor


def test_submitit_map_array_round_trip(slurm_cluster, tmp_path):
    import submitit

    handles = _executor(tmp_path).map_array(jobs.square_unless_two, [0, 1, 2, 3])

    results = {}
    for x, handle in enumerate(handles):
        try:
            results[x] = handle.result()[0]
        except submitit.core.utils.FailedJobError as exc:
            results[x] = str(exc)
    assert results[0] == 0 and results[1] == 1 and results[3] == 9
    assert "ValueError: boom on 2" in results[2]
    assert handles[3].result()[2] == "3"  # it ran as array element 3
    array_id = handles[0].job_id.split("_")[0]
    assert wait_for_jobs([array_id], timeout=60)[f"{array_id}_2"] == "FAILED"


def test_submitit_sees_a_cancelled_job(slurm_cluster, tmp_path):
    import submitit

    handle = _executor(tmp_path).submit(jobs.sleep_for, 120)
    _wait_until(lambda: _ctld_state(handle.job_id) == "RUNNING", 60, f"{handle.job_id} never ran")
    handle.cancel()

    # Without sacct (slurmdbd) submitit never learns the job ended and result() blocks forever.
    def done():
        return handle.done(force_check=True)  # skips submitit's polling backoff

    _wait_until(done, 60, f"submitit never saw job {handle.job_id} end")
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="CANCELLED"):
        handle.result()
    assert wait_for_jobs([handle.job_id], timeout=60) == {handle.job_id: "CANCELLED"}


def test_sbatch_template_runs_the_stage_command(slurm_cluster, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "heal-batch"
    fake.write_text('#!/bin/bash\necho "heal-batch $*"\n')
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "STAGE": "generate",
        "CONFIG": "jobs/demo.yaml",
        "WORKDIR": "runs/demo",
    }
    job = sbatch(
        "--array=0-1",
        "--export=ALL",
        f"--partition={slurm_cluster.partition}",
        str(REPO / "slurm" / "sbatch-task.sh"),
        cwd=tmp_path,
        env=env,
    )

    assert wait_for_jobs([job], timeout=120) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    out = (tmp_path / f"slurm-{job}_1.out").read_text()
    assert out == "heal-batch stage generate --config jobs/demo.yaml --workdir runs/demo --task 1\n"


def test_local_profile_sbatch_lines_are_accepted_by_sbatch(slurm_cluster, tmp_path):
    script = tmp_path / "probe.sh"
    lines = load_profile("local").sbatch_lines()
    script.write_text("\n".join(["#!/bin/bash", *lines, "true", ""]))

    done = subprocess.run(
        ["sbatch", "--test-only", str(script)], check=False, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert "to start at" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="local-cluster.sh up/status as root only")
def test_bring_up_twice_is_a_no_op(slurm_cluster):
    pids_before = (slurm_cluster.base / "pids").read_text()

    again = _run_script("up")
    status = _run_script("status")

    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout
    assert (slurm_cluster.base / "pids").read_text() == pids_before
    assert status.returncode == 0 and status.stdout.startswith("slurm: up")


def _run_script(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), command],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CI": "true"},
    )


def _ctld_state(job_id: str) -> str:
    done = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], check=False, capture_output=True, text=True
    )
    return done.stdout.strip()


def _wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.5)
