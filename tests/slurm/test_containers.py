"""Containers on the real local Slurm cluster: a profile's `python` command and `srun_args` start
every task, on the submitit path and on the plain sbatch path.

A stand-in wrapper plays `apptainer exec image.sif`: it appends one line to a log (the job, the
array index, a variable that only `srun_args` set, the command) and then execs the real Python.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from heal_batch.executors.slurm.executor import SlurmExecutor
from heal_batch.executors.slurm.profiles import load_profile
from heal_batch.pipeline import status
from heal_batch.pipeline.launch import launch
from heal_batch.stages.ingest import IngestConfig
from tests.fixtures.slurm import wait_for_jobs
from tests.fixtures.toy_stage import ToyPipeline, ingest_run_args, write_problems

pytestmark = pytest.mark.slurm

MARK = "HEAL_SRUN_MARK"


def container_profile(tmp_path: Path) -> tuple[Path, Path]:
    """A `local`-sized profile whose tasks start through the wrapper; returns (profile, log).

    `python` is set at the top level, `srun_args` only for ingest (the per-stage override).
    """
    log = tmp_path / "wrapper.log"
    wrapper = tmp_path / "fake-apptainer.sh"
    wrapper.write_text(
        "#!/bin/bash\n"
        f'echo "job=${{SLURM_JOB_ID:-}} task=${{SLURM_ARRAY_TASK_ID:-}} '
        f'mark=${{{MARK}:-none}} cmd=$*" >> {shlex.quote(str(log))}\n'
        'exec "$@"\n'
    )
    wrapper.chmod(0o755)
    python = f"{shlex.quote(str(wrapper))} {shlex.quote(sys.executable)}"
    profile = tmp_path / "container.yaml"
    profile.write_text(
        "# The local test cluster, every task started through a stand-in container wrapper.\n"
        "partition: debug\ntime_min: 30\nmem_gb: 1\ncpus_per_task: 1\narray_parallelism: 2\n"
        f"python: {python}\n"
        "per_stage:\n"
        f'  ingest: {{srun_args: ["--export=ALL,{MARK}=ingest"]}}\n'
    )
    return profile, log


def wrapper_calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.is_file() else []


def test_submitit_tasks_run_through_the_profiles_python(slurm_cluster, tmp_path):
    profile_path, log = container_profile(tmp_path)
    problems = write_problems(tmp_path / "problems.jsonl", n=6)
    cfg = ToyPipeline(
        workdir=str(tmp_path / "run"),
        executor="slurm",
        cluster=str(profile_path),
        ingest=IngestConfig(paths=[str(problems)], num_shards=2),
    )

    result = launch(
        cfg, SlurmExecutor(load_profile(profile_path)), ["ingest"], wait=True, echo=lambda *_: None
    )

    assert result.submitted == {"ingest": [0, 1]} and not result.failed
    (row,) = status.collect(Path(cfg.workdir))
    assert row.sealed and row.counts["done"] == 2
    calls = wrapper_calls(log)
    assert len(calls) == 2, calls  # one per array task: the wrapper started each task's Python
    assert {c.split()[1] for c in calls} == {"task=0", "task=1"}, calls
    assert all(
        f"mark=ingest cmd={sys.executable} -u -m submitit.core._submit" in c for c in calls
    ), calls


def test_plain_sbatch_scripts_run_through_the_profiles_python(slurm_cluster, tmp_path):
    from heal_batch.cli import main

    profile_path, log = container_profile(tmp_path)
    problems = write_problems(tmp_path / "p.jsonl", n=6)
    workdir = tmp_path / "run"
    folder = tmp_path / "sbatch"
    args = ingest_run_args(workdir, problems, 2, cluster=profile_path)
    assert main([*args, "--sbatch_dir", str(folder)]) == 0

    (script,) = folder.glob("*-ingest.sbatch")
    command = script.read_text().splitlines()[-1]
    assert command.startswith(f"srun --export=ALL,{MARK}=ingest {tmp_path}/fake-apptainer.sh ")
    out = subprocess.run(
        ["bash", str(folder / "submit.sh")], capture_output=True, text=True, check=True
    ).stdout
    job = out.split("job ")[-1].strip()
    states = wait_for_jobs([job], timeout=120)
    assert set(states.values()) == {"COMPLETED"}, states
    (row,) = status.collect(workdir)
    assert row.sealed and row.counts["done"] == 2
    calls = wrapper_calls(log)
    assert len(calls) == 2, calls
    assert {c.split()[1] for c in calls} == {"task=0", "task=1"}, calls
    assert all(
        f"mark=ingest cmd={sys.executable} -m heal_batch.cli stage ingest" in c for c in calls
    ), calls
