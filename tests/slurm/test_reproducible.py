"""Same config, machine and thread count: the same results however a task is run.

- ``generate`` (tiny Llama, transformers backend) on the debug, local and Slurm executors with one
  thread each writes the same shard addresses, and every generate receipt says what it ran with
  (``threads: 1``, ``device: cpu``);
- a train stage with 2 ranks through Slurm (one job, ``--ntasks-per-node=2``, submitit starts the
  ranks with srun, gloo on CPU) logs the same losses as 1 rank with gradient accumulation 2: the
  same global batches, split over ranks instead of micro-batches.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from heal_batch.config import PipelineConfig
from heal_batch.executors import make_executor
from heal_batch.executors.slurm.executor import SlurmExecutor
from heal_batch.executors.slurm.profiles import load_profile
from heal_batch.pipeline.launch import launch
from heal_batch.stages.curriculum.stage import CurriculumConfig, CurriculumStage
from heal_batch.stages.generate import GenerateConfig
from heal_batch.stages.ingest import IngestConfig
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.stages.train.stage import StudentConfig, Train1Stage, TrainStageConfig
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import read_receipts
from heal_batch.store.shards import read_records, shard_path
from heal_batch.training.logs import read_log
from tests.fixtures.slurm_runs import receipts, write_profile
from tests.fixtures.toy_stage import write_problems
from tests.stages.test_curriculum import FakeGenerate, FakeScore, FakeUpstreamConfig, base_records
from tests.stages.test_train import TrainPipeline

pytestmark = pytest.mark.slurm

# DeepSpeed JIT-builds its shm comm op once (~40 s); share the cache with tests/training. The Slurm
# jobs inherit this process's environment.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "heal_batch" / "torch_extensions")
)
QUIET = {"echo": lambda *_: None}


def generate_config(workdir: Path, teacher: Path, problems: Path, executor: str) -> PipelineConfig:
    return PipelineConfig(
        workdir=str(workdir),
        executor=executor,
        cluster="local",
        teacher=TeacherConfig(model=str(teacher), system_prompt=None, examples=[], batch_size=8),
        ingest=IngestConfig(paths=[str(problems)], num_shards=2),
        generate=GenerateConfig(k=2, max_new_tokens=12, chunk_problems=2),
    )


def test_generate_gives_the_same_addresses_on_debug_local_and_slurm(
    slurm_cluster, tmp_path, tiny_llama, monkeypatch
):
    import torch

    problems = write_problems(tmp_path / "problems.jsonl", n=6)
    # One thread everywhere: this process (debug), the local subprocesses (OMP_NUM_THREADS, read
    # when torch starts) and the Slurm tasks (cpus_per_task=1 in the local profile).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    outputs, used = {}, {}
    try:
        for name in ("debug", "local", "slurm"):
            cfg = generate_config(tmp_path / name, tiny_llama, problems, name)
            executor = make_executor(name, parallelism=2, cluster="local")
            result = launch(cfg, executor, ["ingest", "generate"], **QUIET)
            assert not result.failed, (name, result.failed)
            outputs[name] = [p.manifest.outputs for p in result.plans]
            layout = Layout(cfg.workdir)
            receipts = read_receipts(layout, "generate", result.plans[1].key).values()
            used[name] = {(r.threads, r.device) for r in receipts}
    finally:
        torch.set_num_threads(threads)
    assert outputs["debug"] == outputs["local"] == outputs["slurm"], outputs
    assert used == {name: {(1, "cpu")} for name in outputs}, used


def train_config(workdir: Path, student: Path, executor: str, grad_accum: int) -> TrainPipeline:
    gen, scored = base_records()
    gen += [dict(r, id=r["id"] + "x", completion=r["completion"] + " again") for r in gen]
    return TrainPipeline(
        workdir=str(workdir),
        executor=executor,
        fake_generate=FakeUpstreamConfig(gen),
        fake_score=FakeUpstreamConfig(scored),
        curriculum=CurriculumConfig(baselines=[], decontaminate=False),
        student=StudentConfig(model=str(student)),
        train=TrainStageConfig(
            max_steps=4,
            lr=3e-3,
            per_device_batch=1,
            grad_accum=grad_accum,
            max_seq_len=96,
            warmup_ratio=0.0,
            save_every_steps=0,
            dtype="fp32",
        ),
    )


def checkpoint(cfg, result) -> dict:
    plan = next(p for p in result.plans if p.name == "train-1")
    (task,) = plan.manifest.tasks
    return next(read_records(shard_path(Layout(cfg.workdir).store, task.output)))


def test_two_ranks_through_slurm_match_one_rank_with_accumulation(
    slurm_cluster, tmp_path, tiny_llama, monkeypatch
):
    from heal_batch.pipeline.registry import STAGES

    for cls in (FakeGenerate, FakeScore, CurriculumStage, Train1Stage):
        monkeypatch.setitem(STAGES, cls.name, cls)
    upstream = ["generate", "score", "curriculum"]

    one = train_config(tmp_path / "one", tiny_llama, "debug", grad_accum=2)
    one_rank = checkpoint(one, launch(one, make_executor("debug"), [*upstream, "train-1"], **QUIET))

    two = train_config(tmp_path / "two", tiny_llama, "debug", grad_accum=1)
    assert not launch(two, make_executor("debug"), upstream, **QUIET).failed
    two = dataclasses.replace(two, executor="slurm")
    ranks = {"train": {"tasks_per_node": 2, "cpus_per_task": 1, "mem_gb": 4}}
    profile = load_profile(write_profile(tmp_path, "two-ranks", per_stage=ranks))
    result = launch(two, SlurmExecutor(profile), ["train-1"], **QUIET)
    assert not result.failed, result.failed
    two_ranks = checkpoint(two, result)

    assert (two_ranks["world_size"], one_rank["world_size"]) == (2, 1)
    assert two_ranks["steps"] == one_rank["steps"] == 4
    losses = [
        {e["step"]: e["loss"] for e in read_log(Path(r["train_log"]).parent)}
        for r in (two_ranks, one_rank)
    ]
    assert losses[0].keys() == losses[1].keys() == {1, 2, 3, 4}
    for step, loss in losses[1].items():
        assert losses[0][step] == pytest.approx(loss, abs=1e-4), (step, losses)


@pytest.fixture(scope="module")
def parrot(tmp_path_factory) -> Path:
    from tests.fixtures.parrot_model import build_parrot_model

    return build_parrot_model(tmp_path_factory.mktemp("models") / "parrot")


# The parrot solves about half of its samples, so heal-1 (its correct samples) is not empty.
PARROT_PROBLEMS = [
    ("p0", "What is 40 + 2?"),
    ("p1", "What is 39 + 3?"),
    ("p5", "What is 35 + 7?"),
    ("p11", "What is 29 + 13?"),
]


def write_pipeline(folder: Path, teacher: Path, student: Path) -> Path:
    """A real pipeline YAML up to train-1 (a fresh `heal-batch stage` process must parse it)."""
    problems = folder / "problems.jsonl"
    problems.write_text(
        "".join(
            json.dumps({"id": i, "problem": p, "answer": "42"}) + "\n" for i, p in PARROT_PROBLEMS
        )
    )
    config = {
        "workdir": str(folder / "run"),
        "executor": "debug",
        "teacher": {
            "model": str(teacher),
            "system_prompt": None,
            "examples": [],
            "dtype": "float32",
        },
        "ingest": {"paths": [str(problems)], "num_shards": 1},
        "generate": {"k": 2, "max_new_tokens": 12},
        "repair": {
            "paths_per_problem": 1,
            "continuations_per_path": 2,
            "guided_per_problem": 0,
            "max_new_tokens": 12,
            "gear": {"strategy": "start"},
        },
        "score": {"reference_samples": 2},
        "pure": {"kinds": []},
        "curriculum": {"baselines": [], "decontaminate": False},
        "student": {"model": str(student)},
        "train": {
            "max_steps": 3,
            "lr": 3e-3,
            "per_device_batch": 1,
            "max_seq_len": 96,
            "warmup_ratio": 0.0,
            "save_every_steps": 0,
            "dtype": "fp32",
        },
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def train_losses(workdir: Path) -> tuple[dict, dict[int, float]]:
    """(train-1's checkpoint record, its losses by step) for the run refs/train-1 points at."""
    (receipt,) = receipts(workdir, "train-1").values()
    record = next(read_records(shard_path(Layout(workdir).store, receipt.output)))
    log = read_log(Path(record["train_log"]).parent)
    return record, {entry["step"]: entry["loss"] for entry in log}


def test_two_ranks_through_plain_sbatch_match_one_rank_even_with_a_late_rank(
    slurm_cluster, tmp_path, tiny_llama, parrot, capsys
):
    """``--sbatch_dir``: ``srun python -m heal_batch.cli stage train-1 --task 0`` on 2 ranks, each
    a `heal-batch stage` process; rank 1 starts 3 s late (a busy node) and must still join rank 0
    (it once refused the task as "still running on this host": rank 0's start marker)."""
    from heal_batch.cli import main
    from tests.fixtures.slurm import wait_for_jobs

    config = write_pipeline(tmp_path, parrot, tiny_llama)
    workdir = tmp_path / "run"
    stages = "ingest,generate,repair,score,curriculum"
    assert main(["run", "--config", str(config), "--stages", stages]) == 0  # debug, in-process
    ranks = {"train": {"tasks_per_node": 2, "cpus_per_task": 1, "mem_gb": 4}}
    cluster = write_profile(tmp_path, "two-ranks", per_stage=ranks)
    scripts = tmp_path / "sbatch"
    assert (
        main(
            [
                "run",
                "--config",
                str(config),
                "--executor",
                "slurm",
                "--cluster",
                str(cluster),
                "--stages",
                "train-1",
                "--sbatch_dir",
                str(scripts),
            ]
        )
        == 0
    )
    (script,) = scripts.glob("*-train-1.sbatch")
    late = """srun bash -c 'if [ "$SLURM_PROCID" = 1 ]; then sleep 3; fi; exec "$0" "$@"' """
    text = script.read_text()
    assert "\nsrun " in text
    script.write_text(text.replace("\nsrun ", "\n" + late))
    out = subprocess.run(
        ["bash", str(scripts / "submit.sh")], capture_output=True, text=True, check=True
    ).stdout
    job = out.split("job ")[-1].strip()
    try:
        assert wait_for_jobs([job], timeout=300) == {job: "COMPLETED"}
    finally:  # a hanging rank 0 must not hold the shared cluster
        subprocess.run(["scancel", job], check=False, capture_output=True)
    two_ranks, two = train_losses(workdir)

    assert (
        main(["run", "--config", str(config), "--stages", "train-1", "--train.grad_accum", "2"])
        == 0
    )
    one_rank, one = train_losses(workdir)
    assert (two_ranks["world_size"], one_rank["world_size"]) == (2, 1)
    assert two.keys() == one.keys() == {1, 2, 3}
    for step, loss in one.items():
        assert two[step] == pytest.approx(loss, abs=1e-4), (step, one, two)
