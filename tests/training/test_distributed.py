"""Where ranks come from: existing env, Slurm tasks (via submitit's helper), or one local
process."""

from __future__ import annotations

import os

import pytest

from heal_batch.training import distributed

VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")


@pytest.fixture
def clean_env():
    """No rank or Slurm variables during the test; the whole environment is restored after.

    (Not monkeypatch: its undo would run after this restore and bring back what tests set.)
    """
    saved = dict(os.environ)
    for key in list(os.environ):
        if key in VARS or key.startswith(("SLURM_", "SUBMITIT_")):
            del os.environ[key]
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


def test_single_process_gets_rank_zero_and_a_free_port(clean_env):
    distributed._export_env()
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == (
        "0",
        "1",
        "0",
    )
    assert 0 < int(os.environ["MASTER_PORT"]) < 65536


def test_existing_rank_variables_are_left_alone(clean_env):
    clean_env["RANK"] = "3"
    clean_env["WORLD_SIZE"] = "4"
    distributed._export_env()
    assert os.environ["RANK"] == "3" and "MASTER_PORT" not in os.environ


_EXIT_PROBE = """
import atexit, sys
import torch.distributed as dist
from heal_batch.training.distributed import distributed_env

# Registered first, so it runs last: after heal_batch's own exit hook.
atexit.register(lambda: print("initialized at exit:", dist.is_initialized(), flush=True))
try:
    with distributed_env():
        if sys.argv[1] == "raise":
            raise RuntimeError("training failed")
except RuntimeError:
    pass
"""


@pytest.mark.parametrize(("how", "left_up"), [("clean", False), ("raise", True)])
def test_group_is_destroyed_at_exit_only_after_a_clean_last_use(clean_env, how, left_up):
    """Gloo threads alive at interpreter finalisation abort the process (exit -6) after training."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _EXIT_PROBE, how], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"initialized at exit: {left_up}" in proc.stdout
