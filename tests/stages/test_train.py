"""train-1..3 and train-baselines: the tiny Llama through the whole training DAG, rank-0 records,
stable out dirs, per-stage run keys."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from heal_batch.pipeline.contract import Task, TaskIO
from heal_batch.stages.curriculum.stage import CurriculumConfig, CurriculumStage
from heal_batch.stages.train.stage import (
    StudentConfig,
    Train1Stage,
    Train2Stage,
    Train3Stage,
    TrainBaselinesStage,
    TrainStageConfig,
)
from heal_batch.store.layout import Layout
from heal_batch.store.shards import read_records, shard_path, write_records
from heal_batch.training.logs import read_log
from tests.stages.test_curriculum import (
    CurriculumPipeline,
    FakeGenerate,
    FakeScore,
    FakeUpstreamConfig,
    base_records,
)

# DeepSpeed JIT-builds its shm comm op once (~40 s); share the cache with tests/training.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "heal_batch" / "torch_extensions")
)
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "manifests" / "checkpoint.schema.json").read_text()
)
TRAIN_STAGES = (Train1Stage, Train2Stage, Train3Stage, TrainBaselinesStage)
TINY = {
    "lr": 3e-3,
    "per_device_batch": 2,
    "grad_accum": 1,
    "max_seq_len": 96,
    "warmup_ratio": 0.0,
    "save_every_steps": 0,
    "dtype": "fp32",
}


@dataclass
class TrainPipeline(CurriculumPipeline):
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainStageConfig = field(default_factory=TrainStageConfig)


@pytest.fixture
def train_dag(monkeypatch):
    from heal_batch.pipeline.registry import STAGES

    for cls in (FakeGenerate, FakeScore, CurriculumStage, *TRAIN_STAGES):
        monkeypatch.setitem(STAGES, cls.name, cls)


def outputs(cfg, result, name):
    plan = next(p for p in result.plans if p.name == name)
    layout = Layout(cfg.workdir)
    return plan, [
        list(read_records(shard_path(layout.store, t.output))) for t in plan.manifest.tasks
    ]


def test_pace_stages_chain_checkpoints_and_rs_matches_their_steps(tmp_path, tiny_llama, train_dag):
    from transformers import AutoModelForCausalLM

    from heal_batch.executors import make_executor
    from heal_batch.pipeline.launch import launch

    gen, scored = base_records()
    gen += [dict(r, id=r["id"] + "x", completion=r["completion"] + " again") for r in gen]
    cfg = TrainPipeline(
        workdir=str(tmp_path / "run"),
        executor="debug",
        fake_generate=FakeUpstreamConfig(gen),
        fake_score=FakeUpstreamConfig(scored),
        curriculum=CurriculumConfig(baselines=["rs"], decontaminate=False),
        student=StudentConfig(model=str(tiny_llama)),
        train=TrainStageConfig(epochs=[2, 1, 1], **TINY),
    )
    stages = ["generate", "score", "curriculum", *(c.name for c in TRAIN_STAGES)]
    result = launch(cfg, make_executor("debug"), stages, echo=lambda *_: None)
    assert not result.failed, result.failed
    records = {}
    for cls in TRAIN_STAGES:
        plan, shards = outputs(cfg, result, cls.name)
        for (record,) in shards:
            jsonschema.validate(record, SCHEMA)
            records[record["set"]] = record
            expected = tmp_path / "run" / "checkpoints" / plan.key / record["set"] / "hf"
            assert Path(record["path"]) == expected.resolve() and expected.is_dir()
    h1, h2, h3, rs = (records[s] for s in ("heal-1", "heal-2", "heal-3", "rs"))
    assert h1["base"] == rs["base"] == str(tiny_llama) and rs["init_path"] == str(tiny_llama)
    assert (h2["base"], h2["init_path"]) == ("heal-1", h1["path"])
    assert (h3["base"], h3["init_path"]) == ("heal-2", h2["path"])
    assert rs["steps"] == h1["steps"] + h2["steps"] + h3["steps"]  # the same step budget
    assert h1["examples"] == rs["examples"] < h2["examples"] < h3["examples"]
    # Stage 2 starts from stage 1's weights: its first loss is far below an untrained model's.
    log1, log2 = read_log(Path(h1["train_log"]).parent), read_log(Path(h2["train_log"]).parent)
    assert len(log1) == h1["steps"] and log2[0]["loss"] < log1[0]["loss"] - 1.0
    m1, m2 = (AutoModelForCausalLM.from_pretrained(r["path"]) for r in (h1, h2))
    assert not m1.model.embed_tokens.weight.equal(m2.model.embed_tokens.weight)
    assert launch(cfg, make_executor("debug"), stages, echo=lambda *_: None).submitted == {}


def test_only_rank_zero_writes_and_the_out_dir_is_stable(tmp_path, monkeypatch):
    from heal_batch.training import TrainResult, loop

    calls = []

    def fake_train(records, init, out_dir, cfg):
        calls.append((init, out_dir, cfg))
        hf = out_dir / "hf"
        return TrainResult(hf, 7, float("nan"), {"model.safetensors": "0" * 64}, 3, 10.0, 0.9)

    monkeypatch.setattr(loop, "train_sft", fake_train)
    layout = Layout(tmp_path / "run")
    layout.store.mkdir(parents=True)
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    shard = write_records(layout.store, [{"id": "x", "set": "heal-1", "messages": chat}])
    stage = Train1Stage(TrainStageConfig(), StudentConfig(model=str(tmp_path)))
    written = {}
    for rank in ("1", "0"):  # the worker hands each rank its rank and world size
        io = TaskIO(layout, "train-1", "c" * 64, 0, rank=int(rank), world_size=2)
        counters = stage.run(Task("train-1", 0, (shard,)), io)
        written[rank] = list(io.read(io.close()[0]))
    assert written["1"] == [] and len(written["0"]) == 1
    assert counters["resumed_from_step"] == 3 and counters["steps"] == 7
    record = written["0"][0]
    jsonschema.validate(record | {"path": str(tmp_path)}, SCHEMA)
    assert record["final_loss"] is None  # NaN is not JSON
    assert (
        calls[0][1]
        == calls[1][1]
        == (tmp_path / "run").resolve() / "checkpoints" / ("c" * 64) / "heal-1"
    )
    assert calls[0][2].epochs == 5 and calls[0][2].max_steps is None


def test_empty_set_is_an_error_naming_the_counters(tmp_path):
    layout = Layout(tmp_path)
    layout.store.mkdir(parents=True)
    stage = Train1Stage(TrainStageConfig(), StudentConfig(model=str(tmp_path)))
    with pytest.raises(ValueError, match="set is empty.*dropped_"):
        stage.run(
            Task("train-1", 0, (write_records(layout.store, []),)),
            TaskIO(layout, "train-1", "k", 0),
        )


def test_run_keys_cover_only_each_stages_own_settings():
    student = StudentConfig()
    a = TrainStageConfig(epochs=[5, 2, 2])
    b = dataclasses.replace(a, epochs=[5, 2, 3])
    assert Train1Stage(a, student).config == Train1Stage(b, student).config
    assert Train2Stage(a, student).config == Train2Stage(b, student).config
    assert Train3Stage(a, student).config != Train3Stage(b, student).config
    assert (
        TrainBaselinesStage(a, student).config != TrainBaselinesStage(b, student).config
    )  # budget
    fixed = dataclasses.replace(a, baseline_budget="epochs")
    assert (
        TrainBaselinesStage(fixed, student).config
        == TrainBaselinesStage(dataclasses.replace(fixed, epochs=[1, 1, 1]), student).config
    )
    assert (
        Train3Stage(a, student).config.train.epochs == 2
        and TrainBaselinesStage.resources == "distributed"
    )


def test_plans():
    from types import SimpleNamespace

    cur = SimpleNamespace(tasks=[SimpleNamespace(index=i) for i in range(5)])
    one = SimpleNamespace(tasks=[SimpleNamespace(index=0)])
    cfg, student = TrainStageConfig(), StudentConfig()
    assert Train1Stage(cfg, student).plan({"curriculum": cur}) == [
        Task("train-1", 0, ("@curriculum/0",))
    ]
    assert Train3Stage(cfg, student).plan({"curriculum": cur, "train-2": one}) == [
        Task("train-3", 0, ("@curriculum/2", "@train-2/0"))
    ]
    heal = ("@curriculum/0", "@curriculum/1", "@curriculum/2")
    assert TrainBaselinesStage(cfg, student).plan({"curriculum": cur}) == [
        Task("train-baselines", 0, ("@curriculum/3", *heal)),
        Task("train-baselines", 1, ("@curriculum/4", *heal)),
    ]


def test_config_errors():
    with pytest.raises(ValueError, match="train.epochs needs one value per HEAL stage"):
        TrainStageConfig(epochs=[1, 1])
    with pytest.raises(ValueError, match="TrainConfig.per_device_batch"):
        TrainStageConfig(per_device_batch=0)
