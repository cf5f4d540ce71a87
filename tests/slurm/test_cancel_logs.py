"""``heal-batch logs`` and ``heal-batch cancel`` on real jobs: Slurm arrays and local processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heal_batch.cli import main
from heal_batch.executors.slurm.executor import SlurmExecutor
from heal_batch.executors.slurm.profiles import load_profile
from heal_batch.pipeline import status
from heal_batch.pipeline.launch import launch
from heal_batch.pipeline.logs import LogNotFound, task_logs
from heal_batch.pipeline.registry import STAGES
from heal_batch.stages.ingest import IngestConfig
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import read_receipts
from tests.fixtures.toy_stage import ToyPipeline, ToyStage, write_problems

REPO = Path(__file__).resolve().parents[2]
STARTED = "sleep stage task {} starting"


class SleepStage(ToyStage):
    """A toy stage whose tasks announce themselves on stderr, then sleep (a long task)."""

    def run(self, task, io):
        print(STARTED.format(task.index), file=sys.stderr, flush=True)
        time.sleep(600)
        raise AssertionError("the sleeping task should have been cancelled")


# Task processes check stage names against the registry; they import this module when they unpickle
# their SleepStage, and register it when the test asked for it (the env var reaches the processes).
REGISTER = "HEAL_BATCH_TEST_SLEEP_STAGE"
if os.environ.get(REGISTER):
    STAGES.setdefault("toy", SleepStage)


def _wait_for_log(workdir: Path, stage: str, index: int, text: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(text in path.read_text() for path in task_logs(workdir, stage, index)):
                return
        except LogNotFound:
            pass
        time.sleep(1)
    pytest.fail(f"{stage} task {index} never logged {text!r}")


@pytest.mark.slurm
def test_logs_and_cancel_on_slurm(slurm_cluster, tmp_path, monkeypatch, capsys):
    from tests.fixtures.slurm import wait_for_jobs

    monkeypatch.setitem(STAGES, "toy", SleepStage)
    monkeypatch.setenv(REGISTER, "1")
    problems = write_problems(tmp_path / "problems.jsonl", n=4)
    cfg = ToyPipeline(
        workdir=str(tmp_path / "run"),
        executor="slurm",
        cluster="local",
        ingest=IngestConfig(paths=[str(problems)], num_shards=2),
    )
    result = launch(
        cfg,
        SlurmExecutor(load_profile("local")),
        ["ingest", "toy"],
        wait=False,
        echo=lambda *_: None,
    )
    toy_jobs = [t.job_id for t in result.plans[1].manifest.tasks]
    workdir = Path(cfg.workdir)
    _wait_for_log(workdir, "toy", 0, STARTED.format(0))

    capsys.readouterr()
    assert main(["logs", str(workdir), "toy", "0", "--tail", "3"]) == 0
    assert STARTED.format(0) in capsys.readouterr().out
    assert main(["logs", str(workdir), "ingest", "1"]) == 0  # a finished task: its receipt's log
    assert "submitit" in capsys.readouterr().out

    assert main(["cancel", "--workdir", str(workdir), "--stages", "toy"]) == 0
    out = capsys.readouterr().out
    assert all(job in out for job in toy_jobs), out
    states = wait_for_jobs(toy_jobs, timeout=120)
    assert set(states.values()) == {"CANCELLED"}, states
    (toy,) = [r for r in status.collect(workdir) if r.stage == "toy"]
    assert toy.counts["failed"] == 2 and "CANCELLED" in toy.failures[0].reason

    assert main(["cancel", "--workdir", str(workdir)]) == 0  # nothing left to cancel
    out = capsys.readouterr().out
    assert "already ended" in out and "ingest" in out and "complete" in out


DRIVER = """
import sys
from heal_batch.executors.local import LocalExecutor
from heal_batch.pipeline.launch import launch
from heal_batch.pipeline.registry import STAGES
from heal_batch.stages.ingest import IngestConfig
from tests.fixtures.toy_stage import ToyPipeline
from tests.slurm.test_cancel_logs import SleepStage

STAGES["toy"] = SleepStage
cfg = ToyPipeline(workdir=sys.argv[1], executor="local",
                  ingest=IngestConfig(paths=[sys.argv[2]], num_shards=2))
launch(cfg, LocalExecutor(parallelism=1, show_progress=False), ["ingest", "toy"])
"""


def test_logs_and_cancel_local_tasks(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(STAGES, "toy", SleepStage)
    monkeypatch.setenv(REGISTER, "1")
    # The launcher script is named heal-batch, as the console script is: cancel stops it first.
    driver = tmp_path / "heal-batch"
    driver.write_text(DRIVER)
    workdir = tmp_path / "run"
    problems = write_problems(tmp_path / "problems.jsonl", n=4)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    launcher = subprocess.Popen(
        [sys.executable, str(driver), str(workdir), str(problems)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_log(workdir, "toy", 0, STARTED.format(0), timeout=120)
        capsys.readouterr()
        assert main(["logs", str(workdir), "toy", "0"]) == 0  # found by its start marker
        assert STARTED.format(0) in capsys.readouterr().out

        layout = Layout(workdir)
        key = layout.read_ref("toy")
        (controller,) = _pid_folders(layout.logs("toy", key))
        assert main(["cancel", "--workdir", str(workdir)]) == 0
        out = capsys.readouterr().out
        assert f"pid {controller}" in out and f"stopped launcher pid {launcher.pid}" in out, out
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert not Path(f"/proc/{controller}").exists() or _zombie(controller)
    assert 1 not in read_receipts(layout, "toy", key)  # the launcher stopped: task 1 never ran
    assert len(_pid_folders(layout.logs("toy", key))) == 1
    assert main(["cancel", "--workdir", str(workdir), "--stages", "toy"]) == 0
    assert "no pid record of a running task" in capsys.readouterr().out


def _pid_folders(logs: Path) -> list[int]:
    return [int(p.name) for p in logs.iterdir() if p.name.isdigit()]


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"


def test_logs_and_cancel_name_what_is_wrong(tmp_path, capsys):
    assert main(["logs", str(tmp_path), "generate", "0"]) == 2
    assert "stage 'generate' has no run" in capsys.readouterr().err
    assert main(["cancel", "--workdir", str(tmp_path), "--stages", "gen"]) == 2
    assert "unknown stage(s) gen; valid stages: ingest" in capsys.readouterr().err


def test_logs_reads_no_recorded_path_outside_the_run_log_folder(tmp_path, capsys):
    """A receipt is a file of a shared folder: a ``log_path`` edited to name another file (or a
    copied folder's path to the original) is not read; the folder's own log is found instead."""
    from heal_batch.store.receipts import Receipt, write_receipt

    layout, key = Layout(tmp_path / "run"), "a" * 64
    layout.ref("generate").parent.mkdir(parents=True)
    layout.ref("generate").write_text(key)
    secret = tmp_path / "secret.txt"
    secret.write_text("not a log\n")
    receipt = Receipt("generate", key, 0, "failed", error="x", log_path=str(secret))
    write_receipt(layout, receipt)
    with pytest.raises(LogNotFound, match="no log of generate task 0"):
        task_logs(layout.workdir, "generate", 0)
    assert main(["logs", str(layout.workdir), "generate", "0"]) == 2
    assert "not a log" not in capsys.readouterr().out
    own = layout.logs("generate", key) / "7" / "7_0_log.err"
    own.parent.mkdir(parents=True)
    own.write_text("the task's own log\n")
    write_receipt(layout, Receipt("generate", key, 0, "failed", error="x", log_path=str(own)))
    assert task_logs(layout.workdir, "generate", 0) == [own]

    from heal_batch.store.markers import write_start_marker

    layout.receipt("generate", key, 0).unlink()  # a running task: only its start marker names it
    write_start_marker(layout, "generate", key, 0, str(secret))
    with pytest.raises(LogNotFound):
        task_logs(layout.workdir, "generate", 0)
    write_start_marker(layout, "generate", key, 0, str(own))
    assert task_logs(layout.workdir, "generate", 0) == [own]
