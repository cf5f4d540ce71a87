"""Slurm's own faults on the real local cluster: time limit, preemption, cancellation, node loss.

Every test drives ``heal-batch run`` / ``status`` as a user would, on the tiny Llama teacher
with 4 problems, k=2 and 2 problems per chunk (2 chunks per task). Tasks stop at a chosen point
through :mod:`tests.fixtures.held_generate` (a teacher that is slow exactly where the test needs
it) and Slurm does the rest: a time limit, ``scontrol requeue``, ``scancel``, a SIGKILL of the
job's processes. The shard a task finally writes has the address of an uninterrupted run.

Timing on the local cluster (slurm/local-cluster.sh): with ``--time=1`` Slurm sends the warning
signal at its first periodic check after ``limit - delay - ~30 s``, so ``--signal=USR2@1`` lands
30-60 s into an allocation (submitit's default ``@90`` would land 0-30 s in, possibly before the
first chunk); a requeued job starts again about 20 s later (``cred_expire=10``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from heal_batch.cli import main
from heal_batch.executors.slurm.executor import SlurmExecutor
from heal_batch.executors.slurm.profiles import load_profile
from heal_batch.pipeline import status
from heal_batch.pipeline.launch import launch
from heal_batch.pipeline.registry import STAGES
from heal_batch.stages.generate import GenerateConfig
from heal_batch.stages.ingest import IngestConfig
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.layout import Layout
from tests.fixtures.held_generate import ENV as HOLD
from tests.fixtures.held_generate import (
    AfterGenerateStage,
    HeldGenerateStage,
    marker,
    wait_for_hold,
)
from tests.fixtures.slurm import wait_for_jobs
from tests.fixtures.slurm_runs import (
    GENERATE,
    cancel_jobs_under,
    cli,
    ended,
    follow,
    job_processes,
    output,
    receipts,
    rows,
    sacct_states,
    task_info,
    teacher_section,
    write_config,
    write_profile,
)
from tests.fixtures.toy_stage import ToyPipeline, write_problems

pytestmark = pytest.mark.slurm
STAGES_RUN = "ingest,generate"
# A one-minute limit with the warning signal as late as Slurm sends it: USR2 30-60 s in.
TIME_LIMITED = {"time_min": 1, "additional": {"signal": "USR2@1"}}


def resumed_from_chunk_zero(scratch: Path) -> bool:
    """Chunk 0 was saved before the hold and never again; chunk 1 only after (next allocation)."""
    held = marker(scratch, "chunk").stat().st_mtime
    chunks = scratch / "chunks"
    return (chunks / "0.address").stat().st_mtime <= held < (chunks / "1.address").stat().st_mtime


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_llama) -> str:
    """The generate address of an uninterrupted run (debug executor, one thread)."""
    import torch

    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder, tiny_llama, "local", executor="debug")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Slurm tasks run with cpus_per_task=1
    try:
        assert main(["run", "--config", str(config), "--stages", STAGES_RUN]) == 0
    finally:
        torch.set_num_threads(threads)
    return output(folder / "run")


@pytest.fixture
def held(monkeypatch):
    """generate with holds (tests.fixtures.held_generate); the env var reaches the Slurm jobs."""
    monkeypatch.setitem(STAGES, "generate", HeldGenerateStage)
    return lambda spec: monkeypatch.setenv(HOLD, spec) if spec else monkeypatch.delenv(HOLD, False)


@pytest.fixture
def cancel_leftovers(tmp_path):
    """A failed test must not leave jobs on the shared cluster: cancel this test's jobs."""
    yield
    cancel_jobs_under(tmp_path)


def test_time_limit_requeues_and_resumes_then_fails_past_max_requeues(
    slurm_cluster, tmp_path, tiny_llama, reference, held, capsys, cancel_leftovers
):
    # A: held in its first allocation only, one requeue allowed: done in the second allocation.
    # B: held in every allocation, no requeue allowed: failed at its first time limit.
    runs = {name: tmp_path / name for name in "AB"}
    for name, requeues, hold in (("A", 1, "chunk:first"), ("B", 0, "chunk")):
        runs[name].mkdir()
        cluster = write_profile(runs[name], f"minute{name}", max_requeues=requeues, **TIME_LIMITED)
        held(hold)
        config = write_config(runs[name], tiny_llama, cluster)
        cli(capsys, "run", "--config", str(config), "--stages", STAGES_RUN)
    scratch, job = task_info(runs["A"] / "run", "generate")
    assert wait_for_hold(scratch, "chunk")[1] == 0  # first allocation, chunk 0 saved

    seen: list[dict] = []
    row = follow(runs["A"] / "run", "generate", lambda r: r.counts["done"] == 1, 240, seen)
    assert row.sealed and output(runs["A"] / "run") == reference
    assert resumed_from_chunk_zero(scratch)
    assert not any(c["failed"] for c in seen), f"a requeued task read as failed: {seen}"
    assert sacct_states(job) == ["REQUEUED", "COMPLETED"]
    log = Path(receipts(runs["A"] / "run", "generate")[0].log_path).read_text()
    assert "this job is timed-out" in log  # submitit's handler, on Slurm's USR2

    row = follow(runs["B"] / "run", "generate", ended, 180)
    (failure,) = row.failures
    assert "time limit" in failure.reason and "max_requeues" in failure.reason, failure
    assert failure.log_path and Path(failure.log_path).is_file()
    table = cli(capsys, "status", "--workdir", str(runs["B"] / "run"))
    assert "generate task 0: time limit" in table


def test_preempted_task_runs_again_and_resumes_from_its_chunks(
    slurm_cluster, tmp_path, tiny_llama, reference, held, capsys, cancel_leftovers
):
    held("chunk:first")
    config = write_config(tmp_path, tiny_llama, "local")
    cli(capsys, "run", "--config", str(config), "--stages", STAGES_RUN)
    workdir = tmp_path / "run"
    scratch, job = task_info(workdir, "generate")
    wait_for_hold(scratch, "chunk")
    subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)

    seen: list[dict] = []
    row = follow(workdir, "generate", lambda r: r.counts["done"] == 1, 180, seen)
    assert row.sealed and output(workdir) == reference
    assert resumed_from_chunk_zero(scratch)
    assert not any(c["failed"] for c in seen), seen
    assert sacct_states(job) == ["REQUEUED", "COMPLETED"]


def test_cancelled_stage_shows_in_status_and_run_resubmits_only_it_and_downstream(
    slurm_cluster, tmp_path, tiny_llama, held, monkeypatch, capsys, cancel_leftovers
):
    monkeypatch.setitem(STAGES, "toy", AfterGenerateStage)  # a cheap stage reading generate i
    problems = write_problems(tmp_path / "problems.jsonl", n=4)
    cfg = ToyPipeline(
        workdir=str(tmp_path / "run"),
        executor="slurm",
        cluster="local",
        teacher=TeacherConfig(**teacher_section(tiny_llama)),
        generate=GenerateConfig(**GENERATE),
        ingest=IngestConfig(paths=[str(problems)], num_shards=2),
    )
    workdir, stages = tmp_path / "run", ["ingest", "generate", "toy"]

    def run(echo=lambda *_: None):  # what `heal-batch run` does with this config
        return launch(cfg, SlurmExecutor(load_profile("local")), stages, wait=False, echo=echo)

    held("1@chunk")  # generate task 1 runs until it is cancelled
    run()
    scratch, job = task_info(workdir, "generate", 1)
    wait_for_hold(scratch, "chunk")
    follow(workdir, "generate", lambda r: r.counts["done"] == 1, 120)
    subprocess.run(["scancel", job.split("_")[0]], check=True)  # the running stage's array
    assert wait_for_jobs([job], timeout=60)[job] == "CANCELLED"

    row = follow(workdir, "toy", ended, 120)  # toy 0 ran; toy 1 lacks its input
    assert (row.counts["done"], row.counts["failed"]) == (1, 1)
    assert "generate/1" in row.failures[0].reason, row.failures
    (failure,) = rows(workdir)["generate"].failures
    assert failure.index == 1 and failure.reason.startswith("Slurm: CANCELLED"), failure
    assert failure.log_path and Path(failure.log_path).is_file()
    table = cli(capsys, "status", "--workdir", str(workdir))
    assert "generate task 1: Slurm: CANCELLED" in table and failure.log_path in table

    before = {stage: receipts(workdir, stage) for stage in stages}
    held(None)
    lines: list[str] = []
    assert run(lines.append).submitted == {"generate": [1], "toy": [1]}, lines
    assert any(line.startswith("ingest") and "nothing to submit" in line for line in lines)
    follow(workdir, "toy", lambda r: r.sealed, 120)
    after = {stage: receipts(workdir, stage) for stage in stages}
    for stage in stages:  # task 0 of every stage kept its receipt; the task 1s ran again
        assert after[stage][0] == before[stage][0], stage
    assert after["generate"][1].finished_at > before["toy"][1].finished_at
    assert after["toy"][1].state == "done" != before["toy"][1].state


def test_node_loss_mid_write_leaves_no_shard_and_a_rerun_gives_the_same_address(
    slurm_cluster, tmp_path, tiny_llama, reference, held, capsys, cancel_leftovers
):
    config = write_config(tmp_path, tiny_llama, "local")
    workdir = tmp_path / "run"
    held("write")  # holds with the first record in its output shard's temp file
    cli(capsys, "run", "--config", str(config), "--stages", STAGES_RUN)
    scratch, job = task_info(workdir, "generate")
    pid, _ = wait_for_hold(scratch, "write")

    # The node goes away: every process of the job dies at once, nothing cleans up.
    pids = job_processes(job)
    assert pid in pids
    for each in pids:
        with contextlib.suppress(ProcessLookupError):  # exited between listpids and kill
            os.kill(each, signal.SIGKILL)
    assert wait_for_jobs([job], timeout=60)[job] in {"FAILED", "CANCELLED", "NODE_FAIL"}

    store = workdir / "store"
    ingest = output(workdir, "ingest")
    assert {p.name.split(".")[0] for p in store.glob("*/*.jsonl.zst")} == {ingest}
    parts = list((store / ".tmp").glob("*.part"))
    assert parts, "the killed writer's temp file stays (swept later)"
    (failure,) = rows(workdir)["generate"].failures
    assert "Slurm: FAILED" in failure.reason, failure

    old = time.time() - 2 * 3600  # an hour later the launcher may sweep it
    for part in parts:
        os.utime(part, (old, old))
    held(None)
    out = cli(capsys, "run", "--config", str(config), "--stages", STAGES_RUN)
    assert f"removed {len(parts)} stale temp file(s)" in out, out
    row = follow(workdir, "generate", lambda r: r.sealed, 120)
    assert row.counts["done"] == 1 and output(workdir) == reference
    assert not list((store / ".tmp").glob("*.part"))


def test_a_slurm_timeout_reads_as_a_time_limit_in_status(tmp_path, monkeypatch):
    """TIMEOUT without a receipt (the task never got to handle USR2): sacct's state, in words."""
    from heal_batch.store.manifests import Manifest, TaskEntry, save_manifest

    layout = Layout(tmp_path)
    key = "a" * 64
    save_manifest(
        layout,
        Manifest(
            stage="ingest",
            run_key=key,
            stage_version=1,
            format_version=1,
            code_version="t",
            config={},
            pipeline={},
            upstream={},
            executor="slurm",
            tasks=[
                TaskEntry(
                    index=0,
                    inputs=[],
                    state="submitted",
                    job_id="7_0",
                    log_path="/logs/7_0_log.err",
                )
            ],
        ),
    )
    layout.ref("ingest").parent.mkdir(parents=True, exist_ok=True)
    layout.ref("ingest").write_text(key + "\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacct").write_text("#!/bin/sh\necho '7_0|TIMEOUT'\n")
    (fake / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    (row,) = status.collect(tmp_path)
    (failure,) = row.failures
    assert failure.reason.startswith("Slurm: TIMEOUT: time limit reached"), failure
    assert failure.log_path == "/logs/7_0_log.err"
