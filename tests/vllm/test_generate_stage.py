"""generate with ``teacher.backend: vllm`` through the launcher: records valid per
manifests/trajectory.schema.json, a too-long prompt soft-fails, a local task sizes its engine."""

from __future__ import annotations

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
from tests.vllm.conftest import ENGINE, TEACHER

pytestmark = pytest.mark.vllm
REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "manifests" / "trajectory.schema.json").read_text())
TOO_LONG = "What is" + " 1 +" * 2100 + " 1?"  # about 6,300 tokens, beyond max_model_len 2048


def problems_file(path: Path, n: int, too_long: bool = False) -> Path:
    rows = [
        {"id": f"q{i}", "problem": f"What is {i} + {i + 3}?", "answer": str(2 * i + 3)}
        for i in range(n)
    ]
    if too_long:
        rows.append({"id": "q-long", "problem": TOO_LONG, "answer": "2101"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tmp_path, teacher: TeacherConfig, problems: Path, executor: str) -> PipelineConfig:
    return PipelineConfig(
        workdir=str(tmp_path / "run"),
        executor=executor,
        teacher=teacher,
        ingest=IngestConfig(paths=[str(problems)], num_shards=1),
        generate=GenerateConfig(k=2, max_new_tokens=48, chunk_problems=4),
    )


def generate(cfg: PipelineConfig, executor):
    result = launch(cfg, executor, ["ingest", "generate"], echo=lambda *_: None)
    manifest = next(p for p in result.plans if p.name == "generate").manifest
    (task,) = manifest.tasks
    assert not result.failed, task.error
    records = list(read_records(shard_path(Layout(cfg.workdir).store, task.output)))
    return records, task


def test_generate_with_the_vllm_backend(tmp_path, engine, monkeypatch):
    """Debug executor, so the stage gets the session's engine (built by make_generator from the
    same teacher section) instead of starting a second one."""
    import heal_batch.stages.teacher as teacher_module

    def shared_engine(cfg, memory_bytes=None):
        assert cfg == TEACHER
        return engine

    monkeypatch.setattr(teacher_module, "make_generator", shared_engine)
    problems = problems_file(tmp_path / "p.jsonl", 5, too_long=True)
    records, task = generate(config(tmp_path, TEACHER, problems, "debug"), make_executor("debug"))
    assert len(records) == 6 * 2
    for record in records:
        jsonschema.validate(record, SCHEMA)
        assert record["backend"] == "vllm" and record["entropy_method"] == "topk-20"
        assert len(decode_floats(record["entropies"])) == record["n_tokens"]
    long = [r for r in records if r["problem_id"] == "q-long"]
    assert {(r["finish_reason"], r["grade_reason"], r["n_tokens"]) for r in long} == {
        ("length", "prompt_too_long", 0)
    }
    assert all(r["n_tokens"] > 0 for r in records if r["problem_id"] != "q-long")
    assert task.counters["graded_prompt_too_long"] == 2 and task.counters["kept"] == 12


@pytest.mark.slow
def test_a_local_task_sizes_its_engine_from_its_share(tmp_path):
    """A subprocess task (local executor, 2 at once): its own engine, KV cache from its share of
    the machine's memory (not vLLM's 0.92 of the node), in-process in the submitit worker."""
    engine = ENGINE | {"max_num_seqs": 8}
    teacher = TeacherConfig(backend="vllm", dtype="bfloat16", vllm_engine=engine)
    problems = problems_file(tmp_path / "p.jsonl", 2)
    cfg = config(tmp_path, teacher, problems, "local")
    records, task = generate(cfg, make_executor("local", parallelism=2))
    assert len(records) == 4 and all(r["n_tokens"] > 0 for r in records)
    for record in records:
        jsonschema.validate(record, SCHEMA)
    log = Path(task.log_path).with_suffix(".out").read_text()  # vLLM logs to stdout
    kv = 2 * 30 * 3 * 64 * 2 * 2048 * 8  # SmolLM2 bf16 KV bytes per token x tokens x sequences
    assert f"Explicitly set ({round(kv / (1 << 30), 2)}/" in log  # vLLM's line: our size was used
