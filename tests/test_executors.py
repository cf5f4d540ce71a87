"""The local executor stops its task processes when the launcher is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
from pathlib import Path
import heal_batch.executors.local as ex
from tests.fixtures.toy_stage import SleepJob, SleepRunner
ex.TaskRunner = SleepRunner
ex.LocalExecutor(show_progress=False).submit([SleepJob(sys.argv[1])], Path(sys.argv[2]), [])
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_sigterm_to_the_launcher_kills_the_running_task(tmp_path):
    pid_file = tmp_path / "task.pid"
    launcher = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(pid_file), str(tmp_path / "logs")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert _wait_for(pid_file.exists, 60), "the task never started"
        task_pid = int(pid_file.read_text())
        assert _alive(task_pid)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(30) != 0
        assert _wait_for(lambda: not _alive(task_pid), 10), "the task outlived the launcher"
    finally:
        launcher.kill()
