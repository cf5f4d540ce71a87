"""The launcher on the real local Slurm cluster: array jobs, failures, reruns, a DAG at once."""

import subprocess
import time
from pathlib import Path

import pytest

from heal_batch.executors.slurm.executor import SlurmExecutor
from heal_batch.executors.slurm.profiles import load_profile
from heal_batch.pipeline import status
from heal_batch.pipeline.launch import PlanError, launch
from heal_batch.pipeline.registry import STAGES
from heal_batch.stages.ingest import IngestConfig
from heal_batch.store.layout import Layout
from tests.fixtures.toy_stage import (
    REGISTER_TOY,
    ToyPipeline,
    ToyStage,
    ingest_run_args,
    write_problems,
)

pytestmark = pytest.mark.slurm


def make_cfg(tmp_path, shards=8):
    problems = write_problems(tmp_path / "problems.jsonl")
    return ToyPipeline(
        workdir=str(tmp_path / "run"),
        executor="slurm",
        cluster="local",
        ingest=IngestConfig(paths=[str(problems)], num_shards=shards),
    )


def run(cfg, stages=None, wait=True):
    return launch(
        cfg, SlurmExecutor(load_profile("local")), stages, wait=wait, echo=lambda *_: None
    )


def rows(cfg):
    return {r.stage: r for r in status.collect(Layout(cfg.workdir).workdir)}


@pytest.mark.parametrize("failpoint", ["ingest/3@before-run=raise", "ingest/3@mid-write=kill"])
def test_failed_shard_rerun_on_slurm(slurm_cluster, tmp_path, monkeypatch, failpoint):
    cfg = make_cfg(tmp_path)
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", failpoint)
    first = run(cfg, ["ingest"])
    assert first.submitted == {"ingest": list(range(8))}
    assert first.failed == {"ingest": [3]}
    row = rows(cfg)["ingest"]
    assert row.counts["done"] == 7 and row.counts["failed"] == 1
    (failure,) = row.failures
    assert (
        ("FailpointError" in failure.reason)
        if failpoint.endswith("raise")
        else ("died" in failure.reason)
    ), failure
    assert failure.log_path and Path(failure.log_path).is_file()

    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    second = run(cfg, ["ingest"])
    assert second.submitted == {"ingest": [3]}
    assert rows(cfg)["ingest"].sealed
    assert run(cfg, ["ingest"]).submitted == {}


def test_dag_is_submitted_at_once_with_dependencies(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setitem(STAGES, "toy", ToyStage)
    monkeypatch.setenv(REGISTER_TOY, "1")  # the Slurm tasks register it too
    cfg = make_cfg(tmp_path, shards=3)
    result = run(cfg, ["ingest", "toy"], wait=False)
    assert result.submitted == {"ingest": [0, 1, 2], "toy": [0, 1, 2]}
    toy_job = result.plans[1].manifest.tasks[0].job_id.split("_")[0]
    ingest_job = result.plans[0].manifest.tasks[0].job_id.split("_")[0]
    info = subprocess.run(
        ["scontrol", "show", "job", toy_job], capture_output=True, text=True
    ).stdout
    assert (
        f"afterany:{ingest_job}" in info or "Dependency=(null)" in info
    )  # null once ingest already ended
    with pytest.raises(PlanError, match="still queued or running"):
        run(cfg, ["ingest", "toy"], wait=False)  # would submit the same tasks twice

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        current = rows(cfg)
        if all(r.sealed for r in current.values()) and len(current) == 2:
            break
        time.sleep(2)
    else:
        pytest.fail(f"DAG did not finish: {status.render(list(rows(cfg).values()))}")
    assert run(cfg, ["ingest", "toy"]).submitted == {}


def test_plain_sbatch_scripts_run_the_stage(slurm_cluster, tmp_path):
    from heal_batch.cli import main
    from tests.fixtures.slurm import wait_for_jobs

    problems = write_problems(tmp_path / "p.jsonl", n=10)
    workdir = tmp_path / "run"
    args = ingest_run_args(workdir, problems, 3, cluster="local")
    assert main([*args, "--sbatch_dir", str(tmp_path / "sbatch")]) == 0
    submit = tmp_path / "sbatch" / "submit.sh"
    out = subprocess.run(["bash", str(submit)], capture_output=True, text=True, check=True).stdout
    job = out.split("job ")[-1].strip()
    states = wait_for_jobs([job], timeout=120)
    assert set(states.values()) == {"COMPLETED"}, states
    (row,) = status.collect(workdir)
    assert row.counts["done"] == 3 and row.sealed


def test_ingest_and_generate_on_slurm(slurm_cluster, tmp_path, tiny_llama):
    from heal_batch.config import PipelineConfig
    from heal_batch.stages.generate import GenerateConfig
    from heal_batch.stages.teacher import TeacherConfig

    cfg = PipelineConfig(
        workdir=str(tmp_path / "run"),
        executor="slurm",
        cluster="local",
        teacher=TeacherConfig(model=str(tiny_llama), system_prompt=None, examples=[]),
        ingest=IngestConfig(paths=[str(write_problems(tmp_path / "p.jsonl", n=4))], num_shards=2),
        generate=GenerateConfig(k=2, max_new_tokens=8),
    )
    result = run(cfg, ["ingest", "generate"])
    assert result.submitted == {"ingest": [0, 1], "generate": [0, 1]} and not result.failed
    current = rows(cfg)
    assert current["generate"].sealed and current["generate"].counts["done"] == 2
