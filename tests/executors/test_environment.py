"""A task's process set-up: ranks of a multi-task Slurm step, CPU threads, plain values out."""

from __future__ import annotations

import os

import pytest

from heal_batch.executors import environment

VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")
SLURM_STEP = {
    "SLURM_JOB_ID": "77",
    "SLURM_NTASKS": "4",
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_JOB_NODELIST": "gpu[01-02]",
    "SLURM_STEP_NODELIST": "gpu[01-02]",
}


@pytest.fixture
def clean_env():
    """No rank, thread or scheduler variables during the test; the environment is restored after.

    (Not monkeypatch: its undo would run after this restore and bring back what tests set.)
    """
    saved = dict(os.environ)
    for key in list(os.environ):
        if key in VARS or key.startswith(("SLURM_", "SUBMITIT_", "OMP_", "MKL_")):
            del os.environ[key]
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


def test_a_slurm_step_with_several_tasks_gives_each_its_rank(clean_env):
    clean_env.update(SLURM_STEP)
    env = environment.prepare_task()
    got = {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    assert got == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu01"}
    assert (env.rank, env.world_size, env.is_main, env.job_id) == (3, 4, False, "77")
    port = os.environ["MASTER_PORT"]
    for key in VARS:  # another task of the same job picks the same port
        del clean_env[key]
    clean_env["SLURM_PROCID"] = "0"
    assert environment.prepare_task().is_main and os.environ["MASTER_PORT"] == port


def test_variables_inherited_from_the_submitting_shell_do_not_stop_a_multi_task_job(clean_env):
    clean_env.update(SLURM_STEP)
    clean_env["LOCAL_WORLD_SIZE"] = "1"  # e.g. left in the launcher's shell by an engine
    env = environment.prepare_task()
    assert (env.rank, env.world_size, os.environ["LOCAL_WORLD_SIZE"]) == (3, 4, "2")


def test_outside_a_scheduler_a_task_is_rank_zero_of_one(clean_env):
    env = environment.prepare_task()
    assert (env.rank, env.world_size, env.job_id, env.array_task_id) == (0, 1, None, None)
    assert "RANK" not in os.environ  # training sets up a one-process group by itself


def test_a_task_uses_as_many_threads_as_it_has_cpus(clean_env, monkeypatch):
    import torch

    calls = []  # what torch is told (its own count can be pinned by an engine run earlier)
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    clean_env["SLURM_CPUS_PER_TASK"] = "1"
    environment.limit_cpu_threads()
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "1"
    assert calls == [1]
    clean_env["OMP_NUM_THREADS"] = "2"  # the user's own setting wins
    clean_env["SLURM_CPUS_PER_TASK"] = "4"
    environment.limit_cpu_threads()
    assert calls == [1] and os.environ["OMP_NUM_THREADS"] == "2"
    del clean_env["SLURM_CPUS_PER_TASK"], clean_env["OMP_NUM_THREADS"]
    environment.limit_cpu_threads(threads=2)  # the local executor's share
    assert calls == [1, 2] and os.environ["OMP_NUM_THREADS"] == "2"
