"""generate: trajectory records on a tiny model, resume after a kill, reproducible addresses,
SmolLM2 on GSM8K."""

import json
from pathlib import Path

import jsonschema
import pytest

from heal_batch.config import PipelineConfig
from heal_batch.executors import make_executor
from heal_batch.pipeline.launch import launch
from heal_batch.records import decode_floats
from heal_batch.stages.generate import GenerateConfig
from heal_batch.stages.ingest import IngestConfig
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.layout import Layout
from heal_batch.store.shards import read_records, shard_path
from tests.fixtures.toy_stage import write_problems

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "manifests" / "trajectory.schema.json").read_text()
)


def make_cfg(workdir, model, problems, executor="debug", shards=2, **gen):
    gen = {"k": 3, "max_new_tokens": 12, "chunk_problems": 2, **gen}
    return PipelineConfig(
        workdir=str(workdir),
        executor=executor,
        teacher=TeacherConfig(model=str(model), system_prompt=None, examples=[], batch_size=8),
        ingest=IngestConfig(paths=[str(problems)], num_shards=shards),
        generate=GenerateConfig(**gen),
    )


def run(cfg):
    return launch(cfg, make_executor(cfg.executor), ["ingest", "generate"], echo=lambda *_: None)


def trajectories(cfg, result):
    layout = Layout(cfg.workdir)
    plan = next(p for p in result.plans if p.name == "generate")
    return [list(read_records(shard_path(layout.store, t.output))) for t in plan.manifest.tasks]


def test_records_carry_everything(tmp_path, tiny_llama):
    problems = write_problems(tmp_path / "p.jsonl", n=5)
    cfg = make_cfg(tmp_path / "run", tiny_llama, problems)
    result = run(cfg)
    assert not result.failed
    records = [r for shard in trajectories(cfg, result) for r in shard]
    assert len(records) == 5 * 3
    for record in records:
        jsonschema.validate(record, SCHEMA)
        assert (
            len(decode_floats(record["entropies"]))
            == record["n_tokens"]
            == len(record["token_ids"])
        )
        assert len(decode_floats(record["logprobs"])) == record["n_tokens"]
        assert record["entropy_method"] == "exact" and record["prompt"].endswith("assistant\n")
        assert record["correct"] == (record["grade_reason"] == "correct")
    by_problem = {}
    for record in records:
        by_problem.setdefault(record["problem_id"], []).append(record)
    for samples in by_problem.values():
        assert sorted(s["sample_index"] for s in samples) == [0, 1, 2]
        assert {s["n_correct"] for s in samples} == {sum(s["correct"] for s in samples)}
    manifest = next(p for p in result.plans if p.name == "generate").manifest
    assert manifest.config["teacher"]["model"] == str(tiny_llama)


def test_same_config_same_addresses(tmp_path, tiny_llama):
    problems = write_problems(tmp_path / "p.jsonl", n=4)
    a = run(cfg_a := make_cfg(tmp_path / "a", tiny_llama, problems))
    b = run(make_cfg(tmp_path / "b", tiny_llama, problems))
    assert [p.manifest.outputs for p in a.plans] == [p.manifest.outputs for p in b.plans]
    other = run(make_cfg(tmp_path / "c", tiny_llama, problems, seed=1))
    assert other.plans[1].manifest.outputs != a.plans[1].manifest.outputs
    assert cfg_a.generate.seed == 0


def test_killed_task_resumes_from_its_last_chunk(tmp_path, tiny_llama, monkeypatch):
    problems = write_problems(tmp_path / "p.jsonl", n=6)
    reference = run(make_cfg(tmp_path / "ref", tiny_llama, problems, shards=1))
    cfg = make_cfg(tmp_path / "run", tiny_llama, problems, executor="local", shards=1)
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "generate/0@chunk=kill")
    first = run(cfg)
    assert first.failed == {"generate": [0]}
    chunks = Path(cfg.workdir).glob("runs/generate/*/work/0/chunks/*.address")
    assert [p.name for p in chunks] == ["0.address"], "killed right after saving the first chunk"

    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    second = run(cfg)
    assert second.submitted == {"generate": [0]}
    log = Path(second.plans[1].manifest.tasks[0].log_path).read_text()
    assert second.plans[1].manifest.outputs == reference.plans[1].manifest.outputs
    assert log is not None


@pytest.mark.slow
def test_smollm2_on_gsm8k_through_the_launcher(tmp_path, shared_data):
    lines = (shared_data / "gsm8k_test.jsonl").read_text().splitlines()[:3]
    (tmp_path / "gsm8k3.jsonl").write_text("\n".join(lines) + "\n")
    cfg = PipelineConfig(
        workdir=str(tmp_path / "run"),
        executor="local",
        ingest=IngestConfig(paths=[str(tmp_path / "gsm8k3.jsonl")], num_shards=1),
        generate=GenerateConfig(k=2, max_new_tokens=48),
    )
    result = run(cfg)
    assert not result.failed
    (records,) = trajectories(cfg, result)
    assert len(records) == 6 and {r["model"] for r in records} == {"smollm2-135m-instruct"}
    assert all(r["completion"] and r["n_tokens"] > 0 for r in records)
