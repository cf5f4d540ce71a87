"""evaluate: plan order over (checkpoint x benchmark), data folder resolution, a real lm-eval run of
fake train checkpoints (the tiny model) through the launcher, and errors on bad checkpoint
records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import jsonschema
import pytest

from heal_batch.config import PipelineConfig
from heal_batch.data import benchmarks
from heal_batch.executors import make_executor
from heal_batch.pipeline.contract import Counters, Task, TaskIO, ref
from heal_batch.pipeline.launch import launch
from heal_batch.pipeline.registry import STAGES
from heal_batch.stages.evaluate import TRAIN_STAGES, EvaluateConfig, EvaluateStage
from heal_batch.stages.train.stage import StudentConfig
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import Manifest, TaskEntry, load_manifest
from heal_batch.store.shards import ShardWriter, read_records, shard_path

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "manifests" / "eval_result.schema.json").read_text()
)


@dataclass(frozen=True)
class FakeTrainConfig:
    model: str = ""
    sets: dict[str, list[str]] = field(default_factory=dict)  # stage name -> set per task


class FakeTrain:
    """Stands in for train-N: one checkpoint record per set, pointing at `model`."""

    name: ClassVar[str] = "train-1"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ()
    section: ClassVar[str] = "fake_train"
    shared: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[str] = "array"

    def __init__(self, config: FakeTrainConfig):
        self.config = config

    def fingerprint(self) -> str:
        return ""

    def plan(self, upstream):
        return [
            Task(self.name, i, (name,))
            for i, name in enumerate(self.config.sets.get(self.name, []))
        ]

    def run(self, task: Task, io: TaskIO) -> Counters:
        io.write(
            {
                "kind": "checkpoint",
                "set": task.inputs[0],
                "path": self.config.model,
                "files": {},
                "steps": 1,
                "final_loss": 1.0,
                "train_log": None,
                "base": self.config.model,
            }
        )
        counters = Counters()
        counters.keep()
        return counters


FAKE_TRAINS = {name: type(f"Fake_{name}", (FakeTrain,), {"name": name}) for name in TRAIN_STAGES}


@dataclass
class EvalPipeline(PipelineConfig):
    fake_train: FakeTrainConfig = field(default_factory=FakeTrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


@pytest.fixture
def eval_dag(monkeypatch):
    for name, cls in FAKE_TRAINS.items():
        monkeypatch.setitem(STAGES, name, cls)
    monkeypatch.setitem(STAGES, "evaluate", EvaluateStage)


def fake_manifest(stage: str, n: int) -> Manifest:
    return Manifest(
        stage=stage,
        run_key="k" * 64,
        stage_version=1,
        format_version=1,
        code_version="x",
        config={},
        pipeline={},
        upstream={},
        tasks=[TaskEntry(i, []) for i in range(n)],
    )


def test_plan_is_checkpoint_major_base_first(shared_data):
    stage = EvaluateStage(
        EvaluateConfig(
            benchmarks=["gsm8k", "aime24"], data_dir=str(shared_data), base_model="/models/base"
        ),
        StudentConfig(model="/models/student"),
    )
    upstream = {
        "train-1": fake_manifest("train-1", 1),
        "train-2": fake_manifest("train-2", 1),
        "train-3": fake_manifest("train-3", 0),
        "train-baselines": fake_manifest("train-baselines", 2),
    }
    tasks = stage.plan(upstream)
    data = f"data_dir:{shared_data.resolve()}"
    models = [
        "model:/models/base",
        ref("train-1", 0),
        ref("train-2", 0),
        ref("train-baselines", 0),
        ref("train-baselines", 1),
    ]
    assert [t.index for t in tasks] == list(range(10))
    assert [t.inputs for t in tasks] == [
        (m, f"benchmark:{b}", data) for m in models for b in ("gsm8k", "aime24")
    ]
    no_base = EvaluateStage(EvaluateConfig(data_dir=str(shared_data), include_base=False)).plan(
        upstream
    )
    assert no_base[0].inputs[0] == ref("train-1", 0) and len(no_base) == 4 * 2
    student = EvaluateStage(EvaluateConfig(data_dir=str(shared_data)), StudentConfig(model="/s"))
    assert student.plan(upstream)[0].inputs[0] == "model:/s"  # base row = the student by default


def test_data_dir_order_config_env_repo(tmp_path, monkeypatch):
    configured, env, repo = (tmp_path / d for d in ("configured", "env", "repo"))
    for folder in (configured, env, repo):
        folder.mkdir()
    monkeypatch.setattr(benchmarks, "REPO_DATA", repo)
    monkeypatch.setenv("HEAL_BATCH_DATA", str(env))

    def resolve_data_dir(configured):
        return EvaluateStage(EvaluateConfig(data_dir=configured)).data_dir()

    assert resolve_data_dir(str(configured)) == configured
    assert resolve_data_dir(None) == env
    monkeypatch.delenv("HEAL_BATCH_DATA")
    assert resolve_data_dir(None) == repo
    with pytest.raises(FileNotFoundError, match=r"evaluate.data_dir='/nope': no such folder"):
        resolve_data_dir("/nope")
    monkeypatch.setattr(benchmarks, "REPO_DATA", tmp_path / "missing")
    with pytest.raises(
        FileNotFoundError,
        match=r"tried evaluate.data_dir \(not set\), \$HEAL_BATCH_DATA "
        r"\(not set\), .*missing \(no such folder\): set evaluate",
    ):
        resolve_data_dir(None)


def test_fingerprint_follows_benchmark_file_contents(tmp_path):
    (tmp_path / "gsm8k_test.jsonl").write_text('{"id": "a", "problem": "1+1", "answer": "2"}\n')
    stage = EvaluateStage(EvaluateConfig(benchmarks=["gsm8k"], data_dir=str(tmp_path)))
    before = stage.fingerprint()
    assert before == stage.fingerprint()
    (tmp_path / "gsm8k_test.jsonl").write_text('{"id": "a", "problem": "1+1", "answer": "3"}\n')
    assert stage.fingerprint() != before
    with pytest.raises(FileNotFoundError, match="math500.jsonl: benchmark file missing"):
        EvaluateStage(EvaluateConfig(benchmarks=["math500"], data_dir=str(tmp_path))).fingerprint()


def test_eval_config_drops_stage_fields():
    cfg = EvaluateConfig(limit=3, base_model="x").eval_config("/data")
    assert type(cfg).__name__ == "EvalConfig" and cfg.limit == 3 and cfg.data_dir == "/data"


@pytest.mark.parametrize(
    "record,match",
    [
        (
            {"kind": "checkpoint", "set": "heal-1"},
            "expected one record with kind 'checkpoint', 'set' and 'path'",
        ),
        (
            {"kind": "checkpoint", "set": "heal-1", "path": "/no/model"},
            r"'heal-1' .*/no/model does not exist",
        ),
    ],
)
def test_bad_checkpoint_record_names_the_shard(tmp_path, shared_data, record, match):
    layout = Layout(tmp_path)
    with ShardWriter(layout.store) as writer:
        writer.write(record)
    stage = EvaluateStage(EvaluateConfig(data_dir=str(shared_data)))
    task = Task("evaluate", 0, (writer.address, "benchmark:gsm8k", f"data_dir:{shared_data}"))
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        stage.run(task, TaskIO(layout, "evaluate", "k" * 64, 0))


def test_evaluates_base_and_checkpoints_through_lm_eval(
    tmp_path, tiny_llama, shared_data, eval_dag
):
    """ONE small lm-eval run per task: base + heal-1 on 2 GSM8K problems, 8 tokens, n=2."""
    cfg = EvalPipeline(
        workdir=str(tmp_path / "run"),
        executor="debug",
        fake_train=FakeTrainConfig(model=str(tiny_llama), sets={"train-1": ["heal-1"]}),
        evaluate=EvaluateConfig(
            benchmarks=["gsm8k"],
            data_dir=str(shared_data),
            limit=2,
            max_gen_toks=8,
            batch_size=4,
            dtype="float32",
        ),
        student=StudentConfig(model=str(tiny_llama)),
    )
    stages = list(TRAIN_STAGES) + ["evaluate"]
    result = launch(cfg, make_executor("debug"), stages, echo=lambda *_: None)
    assert result.failed == {} and result.submitted["evaluate"] == [0, 1]
    layout = Layout(cfg.workdir)
    manifest = load_manifest(layout.manifest("evaluate", result.plans[-1].key))
    assert manifest.sealed and manifest.counters == {"total": 2, "kept": 2, "problems": 4}
    records = [next(read_records(shard_path(layout.store, t.output))) for t in manifest.tasks]
    assert [r["checkpoint"] for r in records] == ["base", "heal-1"]
    assert records[0]["checkpoint_shard"] is None and len(records[1]["checkpoint_shard"]) == 64
    for index, rec in enumerate(records):
        jsonschema.validate(rec, SCHEMA)
        assert rec["benchmark"] == "gsm8k" and rec["num_problems"] == 2 and rec["n_samples"] == 2
        assert rec["path"] == str(tiny_llama) and rec["data_dir"] == str(shared_data.resolve())
        assert rec["model_revision"].startswith("sha256:")
        kept = layout.scratch("evaluate", manifest.run_key, index) / "lm_eval"
        assert Path(rec["results_file"]).parent == kept and Path(rec["results_file"]).is_file()
        assert len(rec["samples_files"]) == 2
    assert launch(cfg, make_executor("debug"), stages, echo=lambda *_: None).submitted == {}

    from heal_batch.report import write_report

    report = (write_report(layout.workdir).parent / "report.md").read_text()
    base_row = (
        f"| base student | {records[0]['avg_at_n']:.3f} ± {records[0]['avg_at_n_stderr']:.3f} |"
    )
    assert base_row in report and "| HEAL stage I | " in report


def test_arith_needs_no_data_folder_and_skips_the_training_problems(tmp_path, tiny_llama, eval_dag):
    """arith alone: no benchmark folder is resolved; the task writes the held-out file itself,
    without any problem text of ingest.paths (here the very same generator seed)."""
    from heal_batch.data.builtin import generate_problems
    from heal_batch.stages.ingest import IngestConfig

    cfg = EvalPipeline(
        workdir=str(tmp_path / "run"),
        executor="debug",
        ingest=IngestConfig(paths=["builtin:arith?count=40&seed=1000"]),
        evaluate=EvaluateConfig(
            benchmarks=["arith"],
            data_dir=str(tmp_path / "no-such-folder"),
            arith_count=6,
            limit=3,
            max_gen_toks=8,
            n_samples=0,
            dtype="float32",
        ),
        student=StudentConfig(model=str(tiny_llama)),
    )
    result = launch(cfg, make_executor("debug"), [*TRAIN_STAGES, "evaluate"], echo=lambda *_: None)
    assert result.failed == {}
    plan = result.plans[-1]
    assert [t.inputs[1:] for t in plan.tasks] == [("benchmark:arith", "data_dir:generated")]
    layout = Layout(cfg.workdir)
    rec = next(read_records(shard_path(layout.store, plan.manifest.tasks[0].output)))
    jsonschema.validate(rec, SCHEMA)
    assert rec["benchmark"] == "arith" and rec["num_problems"] == 3
    written = Path(rec["data_dir"]) / "arith_heldout.jsonl"
    assert written.parent == layout.scratch("evaluate", plan.key, 0) / "data"
    texts = [json.loads(line)["problem"] for line in written.read_text().splitlines()]
    training = {r["problem"] for r in generate_problems(40, seed=1000)}
    assert len(texts) == 6 and not set(texts) & training
