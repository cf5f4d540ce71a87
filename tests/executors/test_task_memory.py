"""The memory a task may use: Slurm's --mem / --mem-per-cpu, the local executor's share, handed
to stages as TaskIO.memory_bytes (a vLLM engine sizes its KV cache from it)."""

from __future__ import annotations

import os

import pytest

from heal_batch.executors import environment
from heal_batch.executors.slurm.env import slurm_memory_bytes
from heal_batch.pipeline.contract import TASK_MEMORY_VAR, TaskIO
from heal_batch.store.layout import Layout


@pytest.fixture
def no_memory_vars(monkeypatch):
    for key in list(os.environ):
        if key.startswith("SLURM_") or key == TASK_MEMORY_VAR:
            monkeypatch.delenv(key)
    return monkeypatch


def test_slurm_memory_in_bytes(no_memory_vars):
    env = no_memory_vars
    assert slurm_memory_bytes() is None
    env.setenv("SLURM_MEM_PER_CPU", "2048")
    env.setenv("SLURM_CPUS_PER_TASK", "4")
    assert slurm_memory_bytes() == 8 << 30
    env.setenv("SLURM_MEM_PER_NODE", "16384")  # --mem wins
    assert slurm_memory_bytes() == 16 << 30
    env.setenv("SLURM_MEM_PER_NODE", "0")  # --mem=0: the whole node, measured by the caller
    assert slurm_memory_bytes() is None


def test_a_task_learns_its_memory_through_taskio(no_memory_vars, tmp_path):
    env = no_memory_vars
    io = TaskIO(Layout(tmp_path), "generate", "k" * 64, 0)
    environment.export_task_memory(threads=None)
    assert io.memory_bytes is None  # debug executor, no scheduler: unknown
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cores = os.cpu_count() or 1
    environment.export_task_memory(threads=1)  # local executor: its share of the cores
    assert io.memory_bytes == total // cores
    env.setenv("SLURM_MEM_PER_NODE", "4096")
    environment.export_task_memory(threads=1)
    assert io.memory_bytes == 4 << 30
