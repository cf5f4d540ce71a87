"""The vLLM backend through the rest of the pipeline: Slurm, kill-and-resume, repair and score.

- generate on the local Slurm cluster: a task given too little memory (`mem_gb: 1`) fails before
  loading and names the setting; with the profile raised the same run completes;
- a local generate task killed after its first chunk resumes to the shard an uninterrupted run
  writes. What vLLM guarantees: every request carries its own seed, and a chunk is always the same
  batch of problems, so on one machine and thread count a re-run chunk draws the same tokens;
- repair with ``exact_entropy: true`` re-scores the top-K entropies exactly before GEAR picks its
  breakpoints, and score computes PURE's ratios, on the built-in demo problems.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from heal_batch.commands.args import config_from_dict
from heal_batch.executors import make_executor
from heal_batch.executors.slurm.executor import SlurmExecutor
from heal_batch.executors.slurm.profiles import load_profile
from heal_batch.pipeline.launch import launch
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import read_receipts
from heal_batch.store.shards import read_records, shard_path
from tests.fixtures.slurm_runs import write_profile
from tests.vllm.conftest import ENGINE, TEACHER
from tests.vllm.test_generate_stage import config, problems_file

pytestmark = pytest.mark.vllm
REPO = Path(__file__).resolve().parents[2]
QUIET = {"echo": lambda *_: None}
SMALL = ENGINE | {"max_num_seqs": 8}


def outputs(result, stage: str) -> list[str]:
    return next(p for p in result.plans if p.name == stage).manifest.outputs


@pytest.mark.slurm
def test_generate_on_slurm_fails_fast_when_small_then_runs(slurm_cluster, tmp_path):
    teacher = dataclasses.replace(TEACHER, vllm_engine=SMALL)
    cfg = config(tmp_path, teacher, problems_file(tmp_path / "p.jsonl", 3), "slurm")
    cfg = dataclasses.replace(cfg, cluster="local")
    tight = load_profile(write_profile(tmp_path, "tight", per_stage={"generate": {"mem_gb": 1}}))
    first = launch(cfg, SlurmExecutor(tight), ["ingest", "generate"], **QUIET)
    assert first.failed == {"generate": [0]}
    (task,) = next(p for p in first.plans if p.name == "generate").manifest.tasks
    assert "does not fit in this task's memory" in task.error, task.error
    assert "`mem` in the cluster profile" in task.error

    roomy = load_profile(write_profile(tmp_path, "roomy", per_stage={"generate": {"mem_gb": 4}}))
    second = launch(cfg, SlurmExecutor(roomy), ["ingest", "generate"], **QUIET)
    assert not second.failed, second.failed
    layout = Layout(cfg.workdir)
    key = next(p for p in second.plans if p.name == "generate").key
    (receipt,) = read_receipts(layout, "generate", key).values()
    records = list(read_records(shard_path(layout.store, receipt.output)))
    assert len(records) == 3 * 2 and all(r["backend"] == "vllm" for r in records)
    assert all(r["n_tokens"] > 0 for r in records)
    assert receipt.counters["tokens_out"] == sum(r["n_tokens"] for r in records)
    assert receipt.device == "cpu"


@pytest.mark.slow
def test_a_killed_vllm_task_resumes_to_the_uninterrupted_shard(tmp_path, monkeypatch):
    teacher = dataclasses.replace(TEACHER, vllm_engine=SMALL)
    problems = problems_file(tmp_path / "p.jsonl", 6)
    whole = config(tmp_path / "whole", teacher, problems, "local")
    reference = launch(whole, make_executor("local"), ["ingest", "generate"], **QUIET)
    assert not reference.failed, reference.failed

    cut = config(tmp_path / "cut", teacher, problems, "local")
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "generate/0@chunk=kill")
    first = launch(cut, make_executor("local"), ["ingest", "generate"], **QUIET)
    assert first.failed == {"generate": [0]}
    saved = sorted(Path(cut.workdir).glob("runs/generate/*/work/0/chunks/*.address"))
    assert [p.name for p in saved] == ["0.address"], "killed right after its first chunk"

    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    second = launch(cut, make_executor("local"), ["ingest", "generate"], **QUIET)
    assert second.submitted == {"generate": [0]}
    assert outputs(second, "generate") == outputs(reference, "generate")


def demo_config(workdir: Path) -> dict:
    """jobs/demo.yaml on 6 built-in problems (levels 1-3 twice), the vLLM teacher, debug."""
    data = yaml.safe_load((REPO / "jobs" / "demo.yaml").read_text())
    data.update(workdir=str(workdir), executor="debug")
    data["teacher"] = dataclasses.asdict(TEACHER)
    data["ingest"] = {"paths": ["builtin:arith?count=6&seed=0"], "num_shards": 1}
    data["generate"].update(k=4)
    data["repair"].update(paths_per_problem=1, continuations_per_path=2, easy_min_pass_rate=0.5)
    data["repair"]["exact_entropy"] = True
    return data


def test_repair_and_score_on_vllm_with_exact_entropy(tmp_path, engine, monkeypatch):
    """Debug executor with the session's engine (as in test_generate_stage.py)."""
    import heal_batch.stages.teacher as teacher_module

    monkeypatch.setattr(teacher_module, "make_generator", lambda cfg, *_: engine)
    cfg = config_from_dict(demo_config(tmp_path / "run"))
    stages = ["ingest", "generate", "repair", "score"]
    result = launch(cfg, make_executor("debug"), stages, **QUIET)
    assert not result.failed, result.failed
    store = Layout(cfg.workdir).store
    repaired = [r for a in outputs(result, "repair") for r in read_records(shard_path(store, a))]
    corners = [r for r in repaired if r["kind"] == "repair_summary" and r["bucket"] == "corner"]
    assert corners, "the level-3 problems fail on SmolLM2: GEAR has paths to cut"
    methods = {m for s in corners for m in s["entropy_methods"]}
    assert methods == {"exact-rescored"}, methods  # vLLM's top-20 estimate was re-scored
    assert all(
        r["breakpoint"]["entropy_method"] == "exact-rescored"
        for r in repaired
        if r["kind"] == "repair"
    )
    scored = [r for a in outputs(result, "score") for r in read_records(shard_path(store, a))]
    candidates = [r for r in scored if r["kind"] in ("repair", "answer_guided")]
    assert len(candidates) == sum(r["kind"] in ("repair", "answer_guided") for r in repaired)
    assert all("ratio" in r["pure"] for r in candidates)
    assert any(r["kind"] == "reference" for r in scored)
