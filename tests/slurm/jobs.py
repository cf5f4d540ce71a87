"""Functions that Slurm tests submit through submitit.

They live in an importable module (not the test file run as __main__) because submitit pickles
them by reference; the array task imports `tests.slurm.jobs` from the repo (PYTHONPATH).
"""

from __future__ import annotations

import os
import socket
import time


def square_unless_two(x: int) -> tuple[int, str, str]:
    """x*x with the host and array task id; raises for x == 2 (the failing shard)."""
    time.sleep(0.5)
    if x == 2:
        raise ValueError(f"boom on {x}")
    return x * x, socket.gethostname(), os.environ.get("SLURM_ARRAY_TASK_ID", "")


def sleep_for(seconds: float) -> float:
    """Sleeps; used to test cancelling a running job."""
    time.sleep(seconds)
    return seconds
