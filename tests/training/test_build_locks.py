"""A JIT-build lock left by a killed build is removed before DeepSpeed waits on it forever."""

import os
import time

from heal_batch.training.build_locks import STALE_AFTER_S, clear_stale_build_locks, extensions_dir


def test_only_stale_locks_are_removed(tmp_path):
    stale, fresh = tmp_path / "deepspeed_shm_comm" / "lock", tmp_path / "other_op" / "lock"
    for lock in (stale, fresh):
        lock.parent.mkdir()
        lock.touch()
    old = time.time() - STALE_AFTER_S - 60
    os.utime(stale, (old, old))
    assert clear_stale_build_locks(tmp_path) == [stale]
    assert not stale.exists() and fresh.exists()  # a build in progress keeps its lock


def test_the_folder_is_torchs(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    assert extensions_dir() == tmp_path / "ext"
