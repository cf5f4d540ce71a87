"""One launcher per run folder (the lock); no second copy of a task still running on this host."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from heal_batch.cli import main
from heal_batch.executors import make_executor
from heal_batch.pipeline.launch import PlanError, launch
from heal_batch.store.layout import Layout
from tests.fixtures.toy_stage import ingest_run_args, write_problems
from tests.test_launch import make_cfg, run


def hold(code: str, ready) -> subprocess.Popen:
    """A Python child running ``code``; returns once ``ready`` exists."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    return child


def test_a_second_launcher_fails_at_once_naming_the_first(tmp_path, capsys):
    workdir = tmp_path / "run"
    ready = tmp_path / "locked"
    holder = hold(
        f"""
        import pathlib, time
        from heal_batch.store.lock import workdir_lock
        with workdir_lock(pathlib.Path({str(workdir)!r})):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(120)
    """,
        ready,
    )
    problems = write_problems(tmp_path / "p.jsonl", n=4)
    args = ingest_run_args(workdir, problems, 2)
    try:
        started = time.monotonic()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "in use by another heal-batch launcher" in err
        assert time.monotonic() - started < 5
        assert not (workdir / "refs").exists()  # it wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(args) == 0  # the lock died with its holder


def test_a_task_still_running_on_this_host_is_not_started_again(tmp_path):
    cfg = make_cfg(tmp_path, "debug", shards=2)
    plans = launch(cfg, make_executor("debug"), ["ingest"], dry_run=True, echo=lambda *_: None)
    key = plans.plans[0].key
    ready = tmp_path / "started"
    orphan = hold(
        f"""
        import pathlib, time
        from heal_batch.store.layout import Layout
        from heal_batch.store.markers import write_start_marker
        write_start_marker(Layout({cfg.workdir!r}), "ingest", {key!r}, 1)
        pathlib.Path({str(ready)!r}).touch()
        time.sleep(120)
    """,
        ready,
    )
    try:
        with pytest.raises(PlanError, match=f"ingest task 1 \\(pid {orphan.pid}"):
            run(cfg, ["ingest"])
        assert not Layout(cfg.workdir).receipt("ingest", key, 0).exists()  # nothing started
    finally:
        orphan.send_signal(signal.SIGKILL)
        orphan.wait()
    assert run(cfg, ["ingest"]).submitted == {"ingest": [0, 1]}  # a dead pid is no obstacle


def test_a_running_task_has_a_start_marker_naming_its_process(tmp_path, monkeypatch):
    """Killed mid-task (before its receipt) the marker names the task's process; a task that
    wrote its final receipt has none (a process still tearing down does not hold the task)."""
    import json
    import socket

    cfg = make_cfg(tmp_path, "local", shards=2)
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "ingest/1@after-shard=kill")
    result = run(cfg, ["ingest"])
    layout, key = Layout(cfg.workdir), result.plans[0].key
    data = json.loads(layout.start_marker("ingest", key, 1).read_text())
    assert data["host"] == socket.gethostname() and data["pid"] != os.getpid()
    assert not layout.start_marker("ingest", key, 0).exists()  # task 0 finished
    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    assert run(cfg, ["ingest"]).submitted == {"ingest": [1]}  # its process is dead: no obstacle
    assert not layout.start_marker("ingest", key, 1).exists()
