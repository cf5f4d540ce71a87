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
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from heal_batch.cli import main
from heal_batch.pipeline import status
from heal_batch.pipeline.registry import STAGES
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import read_manifest
from heal_batch.store.receipts import read_receipts
from tests.fixtures.held_generate import ENV as HOLD
from tests.fixtures.held_generate import HeldGenerateStage, marker, wait_for_hold
from tests.fixtures.slurm import wait_for_jobs
from tests.fixtures.toy_stage import write_problems

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
GENERATE = {"k": 2, "max_new_tokens": 8, "chunk_problems": 2}
# One time-limit requeue at most a minute apart: USR2 30-60 s in (module docstring).
STAGES_RUN = "ingest,generate"
TIME_LIMITED = {"time_min": 1, "additional": {"signal": "USR2@1"}}


def write_profile(folder: Path, name: str, **keys) -> Path:
    """The local cluster's profile with ``keys`` changed, as ``<folder>/<name>.yaml``."""
    data = yaml.safe_load((REPO / "slurm" / "profiles" / "local.yaml").read_text())
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**data, "name": name, **keys}))
    return path


def write_config(
    folder: Path,
    teacher: Path,
    cluster: Path | str,
    shards: int = 1,
    executor: str = "slurm",
    **sections,
) -> Path:
    """A pipeline YAML for ingest -> generate (-> repair) on 4 problems."""
    problems = write_problems(folder / "problems.jsonl", n=4)
    config = {
        "workdir": str(folder / "run"), "executor": executor, "cluster": str(cluster),
        "teacher": {"model": str(teacher), "system_prompt": None, "examples": [], "batch_size": 8},
        "ingest": {"paths": [str(problems)], "num_shards": shards},
        "generate": GENERATE, **sections,
    }  # fmt: skip
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli(capsys, *argv: str) -> str:
    """stdout of ``heal-batch ARGV`` run in this process (exit code 0 asserted)."""
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def rows(workdir: Path) -> dict[str, status.StageStatus]:
    return {row.stage: row for row in status.collect(workdir)}


def follow(workdir: Path, stage: str, done, timeout: float, seen: list | None = None):
    """Poll status until ``done(row)``; ``seen`` collects every count of ``stage`` on the way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = rows(workdir).get(stage)
        if row is not None:
            if seen is not None:
                seen.append(dict(row.counts))
            if done(row):
                return row
        time.sleep(2)
    table = status.render(list(rows(workdir).values()))
    pytest.fail(f"{stage} did not get there in {timeout}s:\n{table}")


def ended(row) -> bool:
    return row.counts["running"] == 0 and row.counts["pending"] == 0


def task_info(workdir: Path, stage: str, index: int = 0) -> tuple[Path, str]:
    """(scratch folder, Slurm job id ``<array>_<index>``) of a submitted task."""
    layout = Layout(workdir)
    key = layout.read_ref(stage)
    entry = read_manifest(layout, stage, key).tasks[index]
    return layout.scratch(stage, key, index), entry.job_id


def output(workdir: Path, stage: str = "generate", index: int = 0) -> str:
    layout = Layout(workdir)
    return read_receipts(layout, stage, layout.read_ref(stage))[index].output


def resumed_from_chunk_zero(scratch: Path) -> bool:
    """Chunk 0 was saved before the hold and never again; chunk 1 only after (next allocation)."""
    held = marker(scratch, "chunk").stat().st_mtime
    chunks = scratch / "chunks"
    return (chunks / "0.address").stat().st_mtime <= held < (chunks / "1.address").stat().st_mtime


def sacct_states(job: str) -> list[str]:
    """Every state the job went through (``sacct -D``: requeues included), oldest first."""
    wait_for_jobs([job], timeout=60)  # sacct lags slurmctld by a few seconds
    out = subprocess.run(
        ["sacct", "-n", "-X", "-D", "-P", "-j", job, "-o", "State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


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
    jobs = set()
    for path in tmp_path.glob("**/manifests/*/*.json"):
        jobs |= {
            t["job_id"].split("_")[0]
            for t in json.loads(path.read_text())["tasks"]
            if t.get("job_id")
        }
    if jobs:
        subprocess.run(["scancel", *sorted(jobs)], check=False, capture_output=True)


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
    log = Path(row_log(runs["A"] / "run")).read_text()
    assert "this job is timed-out" in log

    row = follow(runs["B"] / "run", "generate", ended, 180)
    (failure,) = row.failures
    assert "time limit" in failure.reason and "max_requeues" in failure.reason, failure
    assert failure.log_path and Path(failure.log_path).is_file()
    table = cli(capsys, "status", "--workdir", str(runs["B"] / "run"))
    assert "generate task 0: time limit" in table


def row_log(workdir: Path, stage: str = "generate", index: int = 0) -> str:
    layout = Layout(workdir)
    return read_receipts(layout, stage, layout.read_ref(stage))[index].log_path


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
    slurm_cluster, tmp_path, tiny_llama, held, capsys, cancel_leftovers
):
    repair = {"paths_per_problem": 1, "continuations_per_path": 1, "guided_per_problem": 0,
              "max_new_tokens": 8, "gear": {"strategy": "start"}}  # fmt: skip
    config = write_config(tmp_path, tiny_llama, "local", shards=2, repair=repair)
    workdir = tmp_path / "run"
    held("1@chunk")  # generate task 1 runs until it is cancelled
    cli(capsys, "run", "--config", str(config), "--stages", "ingest,generate,repair")
    scratch, job = task_info(workdir, "generate", 1)
    wait_for_hold(scratch, "chunk")
    follow(workdir, "generate", lambda r: r.counts["done"] == 1, 120)
    subprocess.run(["scancel", job.split("_")[0]], check=True)  # the running stage's array
    assert wait_for_jobs([job], timeout=60) == {job: "CANCELLED"}

    row = follow(workdir, "repair", ended, 180)  # repair 0 ran; repair 1 lacks its input
    assert (row.counts["done"], row.counts["failed"]) == (1, 1)
    assert "generate/1" in row.failures[0].reason
    (failure,) = rows(workdir)["generate"].failures
    assert failure.index == 1 and "CANCELLED" in failure.reason
    assert failure.log_path and Path(failure.log_path).is_file()
    table = cli(capsys, "status", "--workdir", str(workdir))
    assert "generate task 1: Slurm: CANCELLED" in table and failure.log_path in table

    before = {s: receipts(workdir, s) for s in ("ingest", "generate", "repair")}
    held(None)
    out = cli(capsys, "run", "--config", str(config), "--stages", "ingest,generate,repair")
    assert "submitting tasks 1\n" in out.split("generate", 1)[1], out
    assert "ingest" in out and "nothing to submit" in out.split("generate")[0], out
    follow(workdir, "repair", lambda r: r.sealed, 180)
    after = {s: receipts(workdir, s) for s in ("ingest", "generate", "repair")}
    for stage in before:  # task 0 of every stage kept its receipt; only task 1s ran again
        assert after[stage][0] == before[stage][0], stage
    assert after["generate"][1] != before["generate"].get(1)
    assert after["repair"][1] != before["repair"][1]


def receipts(workdir: Path, stage: str) -> dict[int, str]:
    """{task index: finished_at} of a stage's current run."""
    layout = Layout(workdir)
    found = read_receipts(layout, stage, layout.read_ref(stage))
    return {index: receipt.finished_at for index, receipt in found.items()}


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
    raw = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%A"], capture_output=True, text=True, check=True
    ).stdout.strip()
    listed = subprocess.run(
        ["scontrol", "listpids", raw], capture_output=True, text=True, check=True
    ).stdout.split("\n")[1:]
    pids = [int(line.split()[0]) for line in listed if line.strip()]
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
    save_manifest(layout, Manifest(
        stage="ingest", run_key=key, stage_version=1, format_version=1, code_version="t",
        config={}, pipeline={}, upstream={}, executor="slurm",
        tasks=[TaskEntry(index=0, inputs=[], state="submitted", job_id="7_0",
                         log_path="/logs/7_0_log.err")],
    ))  # fmt: skip
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
