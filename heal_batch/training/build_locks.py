"""Stale JIT-build locks: a killed build must not hang every later training job.

torch's extension builder (``torch.utils.cpp_extension``, used by DeepSpeed's CPU shm comm op at
``deepspeed.init_distributed``) takes ``<extensions dir>/<op>/lock`` while it compiles, and every
other process waits, sleeping without a word, until the file is gone. A build killed mid-way (a
cancelled job, Ctrl-C, a preempted node) leaves the file behind, and from then on every training
task waits forever. A build here takes about a minute; a lock older than ``STALE_AFTER_S`` is
taken to be left behind and removed, with a warning naming it.

    clear_stale_build_locks()   # before deepspeed.init_distributed
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

STALE_AFTER_S = 15 * 60
log = logging.getLogger(__name__)


def extensions_dir() -> Path:
    """Where torch builds extensions: ``$TORCH_EXTENSIONS_DIR``, else torch's default."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory("x", verbose=False)).parent


def clear_stale_build_locks(folder: Path | None = None, max_age_s: float = STALE_AFTER_S) -> list:
    """Remove ``<folder>/*/lock`` files older than ``max_age_s``; returns the removed paths."""
    folder = extensions_dir() if folder is None else folder
    removed = []
    now = time.time()
    for lock in folder.glob("*/lock"):
        try:
            age = now - lock.stat().st_mtime
            if age > max_age_s:
                os.unlink(lock)
                removed.append(lock)
                log.warning("removed a stale build lock (%.0f min old): %s", age / 60, lock)
        except FileNotFoundError:  # another task removed it, or the build finished
            continue
    return removed
