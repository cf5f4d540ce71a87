"""score: PURE blocks on every candidate, reference records from natural trajectories, schemas,
hint-in-context and student scoring on the tiny models."""

import json
import math
from pathlib import Path

import jsonschema
import pytest

from heal_batch.executors import make_executor
from heal_batch.method.pure import PureConfig, ScoredCandidate, decide
from heal_batch.pipeline.launch import launch
from heal_batch.stages.score.stage import ScoreConfig, reference_sample
from heal_batch.store.layout import Layout
from heal_batch.store.shards import read_records, shard_path
from tests.fixtures.scripted_teacher import ScriptedTeacher, make_pipeline
from tests.fixtures.toy_stage import write_problems

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
SCORED = json.loads((MANIFESTS / "scored.schema.json").read_text())
CANDIDATE = json.loads((MANIFESTS / "candidate.schema.json").read_text())
STAGES = ["ingest", "generate", "repair", "score"]


def scored_run(tmp_path, model, monkeypatch, repair=None, pure=None, **score):
    """Scripted teacher for generate/repair; score uses the real tiny model of teacher.model."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    teacher = ScriptedTeacher(model)
    monkeypatch.setattr("heal_batch.stages.teacher.make_generator", lambda cfg, *_: teacher)
    score = {"reference_samples": 3, "chunk_records": 4, **score}
    cfg = make_pipeline(
        tmp_path / "run",
        model,
        write_problems(tmp_path / "p.jsonl", n=6),
        shards=1,
        score=ScoreConfig(**score),
        **({"repair": repair} if repair else {}),
        **({"pure": pure} if pure else {}),
    )
    result = launch(cfg, make_executor("debug"), STAGES, echo=lambda *_: None)
    assert not result.failed
    layout = Layout(cfg.workdir)
    out = {}
    for p in result.plans:
        out[p.name] = [
            r for t in p.manifest.tasks for r in read_records(shard_path(layout.store, t.output))
        ]
    return out, result


def test_every_candidate_scored_and_references_present(tmp_path, tiny_llama, monkeypatch):
    out, result = scored_run(tmp_path, tiny_llama, monkeypatch, pure=PureConfig(eps=0.05))
    records = out["score"]
    for record in records:
        jsonschema.validate(record, SCORED)
        if record["kind"] in ("repair", "answer_guided"):
            jsonschema.validate({k: v for k, v in record.items() if k != "pure"}, CANDIDATE)
    candidates = [r for r in records if r["kind"] in ("repair", "answer_guided")]
    assert len(candidates) == len([r for r in out["repair"] if r["kind"] != "repair_summary"]) == 12
    for c in candidates:
        pure = c["pure"]
        assert (
            pure["unscored_reason"] is None and math.isfinite(pure["ratio"]) and pure["ratio"] > 0
        )
        assert pure["eps"] == 0.05  # the shared pure section's epsilon
        assert pure["ratio"] == pytest.approx(
            pure["max_step_ppl"] / (math.exp(pure["answer_nll"]) + 0.05)
        )
        assert pure["max_step_ppl"] == max(pure["step_ppls"])
        # repairs: only the steps after the cut (prefix = 2 steps); answer-guided: all steps
        assert pure["first_step"] == (2 if c["kind"] == "repair" else 0)
        assert len(pure["step_ppls"]) == pure["n_steps"] - pure["first_step"]
    summaries = [r for r in records if r["kind"] == "repair_summary"]
    assert summaries == [r for r in out["repair"] if r["kind"] == "repair_summary"]
    references = [r for r in records if r["kind"] == "reference"]
    natural = {t["id"] for t in out["generate"] if t["correct"]}
    assert len(references) == 3  # reference_samples of the 4 correct trajectories (q0, q3 x 2)
    assert {r["id"] for r in references} <= natural
    assert all(
        math.isfinite(r["pure"]["ratio"]) and r["pure"]["first_step"] == 0 for r in references
    )
    # everything decide() needs is in the records
    pooled = [ScoredCandidate(c["id"], c["pure"]["ratio"]) for c in candidates]
    decisions = decide(pooled, [r["pure"]["ratio"] for r in references], PureConfig())
    assert sum(not d.keep for d in decisions) >= math.ceil(0.2 * len(pooled))
    counters = next(p for p in result.plans if p.name == "score").manifest.counters
    assert counters["scored"] == 12 and counters["references"] == 3


def test_hint_in_context_and_student_scorer(tmp_path, tiny_llama, tiny_qwen3, monkeypatch):
    plain, _ = scored_run(tmp_path / "a", tiny_llama, monkeypatch)
    hinted, _ = scored_run(
        tmp_path / "b", tiny_llama, monkeypatch, with_hint=True, scorer=str(tiny_qwen3)
    )
    by_id = {r["id"]: r for r in plain["score"] if r["kind"] == "repair"}
    repairs = [r for r in hinted["score"] if r["kind"] == "repair"]
    assert repairs
    for r in repairs:
        assert r["pure"]["with_hint"] and r["pure"]["scorer"] == str(tiny_qwen3)
        assert (
            r["pure"]["first_step"] == 0
            and r["pure"]["n_tokens"] < by_id[r["id"]]["pure"]["n_tokens"]
        )
        assert r["pure"]["ratio"] != by_id[r["id"]]["pure"]["ratio"]


def test_steps_are_the_ones_repair_cut(tmp_path, tiny_llama, monkeypatch):
    """score has no step settings of its own: repair.gear's delimiter and minimum decide."""
    from heal_batch.method.gear import GearConfig

    fine, _ = scored_run(tmp_path / "fine", tiny_llama, monkeypatch)
    whole = GearConfig(min_step_tokens=10_000, strategy="start")  # every answer is one step
    coarse, _ = scored_run(tmp_path / "coarse", tiny_llama, monkeypatch, repair={"gear": whole})
    steps = {
        name: [r["pure"]["n_steps"] for r in out["score"] if r["kind"] == "reference"]
        for name, out in (("fine", fine), ("coarse", coarse))
    }
    assert max(steps["fine"]) > 1 and set(steps["coarse"]) == {1}


def test_reference_sample_is_stable_and_only_correct():
    trajectories = [{"id": f"p#s{i}", "correct": i % 2 == 0} for i in range(10)]
    first = reference_sample(trajectories, 3, seed=0)
    assert len(first) == 3 and all(t["correct"] and t["kind"] == "reference" for t in first)
    assert reference_sample(list(reversed(trajectories)), 3, seed=0) == first
    assert reference_sample(trajectories, 0, seed=0) == []


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"context": "student"}, "score.context"),
        ({"reference_samples": -1}, "score.reference_samples"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_config_errors_name_the_key(kw, message):
    with pytest.raises(ValueError, match=message):
        ScoreConfig(**kw)
