"""repair: corner cases repaired with lineage (scripted teacher), leaks and wrong answers dropped,
resume, exact re-scoring of top-K entropies, and an end-to-end run on the real tiny model."""

import json
from pathlib import Path

import jsonschema
import pytest

from heal_batch.executors import make_executor
from heal_batch.method.gear import GearConfig
from heal_batch.method.hints import build_hint, hint_prefill
from heal_batch.pipeline.launch import launch
from heal_batch.stages.repair.jobs import Job, judge, summary_record
from heal_batch.stages.repair.stage import RepairConfig
from heal_batch.store.layout import Layout
from heal_batch.store.shards import read_records, shard_path
from tests.fixtures.scripted_teacher import FAILED, REPAIRED, ScriptedTeacher, make_pipeline
from tests.fixtures.toy_stage import write_problems

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "manifests" / "candidate.schema.json").read_text()
)
STAGES = ["ingest", "generate", "repair"]


def run(cfg, stages=STAGES):
    return launch(cfg, make_executor("debug"), stages, echo=lambda *_: None)


def outputs(cfg, result, stage):
    layout = Layout(cfg.workdir)
    plan = next(p for p in result.plans if p.name == stage)
    return [
        r for t in plan.manifest.tasks for r in read_records(shard_path(layout.store, t.output))
    ]


@pytest.fixture
def scripted(monkeypatch, tiny_llama):
    def install(**kw):
        teacher = ScriptedTeacher(tiny_llama, **kw)
        monkeypatch.setattr("heal_batch.stages.teacher.make_generator", lambda cfg, *_: teacher)
        return teacher

    return install


@pytest.mark.parametrize("strategy", ["entropy-surge", "start"])
def test_corner_cases_repaired_with_lineage(tmp_path, tiny_llama, scripted, strategy):
    teacher = scripted()
    cfg = make_pipeline(
        tmp_path / "run",
        tiny_llama,
        write_problems(tmp_path / "p.jsonl", n=6),
        repair={"gear": GearConfig(strategy=strategy, min_step_tokens=1, search_fraction=0.9)},
    )
    result = run(cfg)
    assert not result.failed
    trajectories = {t["id"]: t for t in outputs(cfg, result, "generate")}
    records = outputs(cfg, result, "repair")
    for record in records:
        jsonschema.validate(record, SCHEMA)
    summaries = {r["problem_id"]: r for r in records if r["kind"] == "repair_summary"}
    assert sorted(summaries) == ["q1", "q2", "q4", "q5"]  # q0, q3 are easy: left alone
    for s in summaries.values():  # 2 paths x 3 continuations + 1 answer-guided sample
        assert (s["bucket"], s["attempted"], s["correct"], s["leaked"], s["kept"], s["reason"]) == (
            "corner",
            7,
            5,
            2,
            3,
            "kept",
        )
        assert s["dropped"] == {"leak": 2, "wrong_answer": 2}

    repairs = [r for r in records if r["kind"] == "repair"]
    assert sorted(r["id"] for r in repairs if r["problem_id"] == "q1") == ["q1#s0#c0", "q1#s1#c0"]
    cut = FAILED.index("Oops") if strategy == "entropy-surge" else 0
    for r in repairs:
        source = trajectories[r["source_trajectory"]]
        bp = r["breakpoint"]
        assert (bp["step_index"], bp["char_index"], bp["strategy"]) == (
            (2, cut, strategy) if cut else (0, 0, strategy)
        )
        assert bp["reason"] == ("max_surge" if cut else "start")
        assert (
            r["prefix"] == source["completion"][:cut]
            and r["source_sample_index"] == source["sample_index"]
        )
        answer = str(2 * int(r["problem_id"][1:]))
        assert r["continuation"] == REPAIRED.format(answer=answer)
        assert "Hindsight" not in r["text"] and r["text"][r["cut_char"] :] == r["continuation"]
        assert r["text"][: r["cut_char"]].rstrip() == r["prefix"].rstrip()
        assert r["user_prompt"] == source["problem"] and r["hint"] == build_hint(answer)
        assert (source["prompt"] + hint_prefill(r["prefix"], r["hint"]), 3) in teacher.calls
    guided = [r for r in records if r["kind"] == "answer_guided"]
    assert len(guided) == 4 and all(r["cut_char"] == 0 and r["breakpoint"] is None for r in guided)
    assert all(
        "For reference" in r["hint"] and "For reference" not in r["user_prompt"] for r in guided
    )

    counters = next(p for p in result.plans if p.name == "repair").manifest.counters
    kept_tokens = sum(r["n_continuation_tokens"] for r in records if r["kind"] != "repair_summary")
    generated = sum(s["generated_tokens"] for s in summaries.values())
    assert counters["tokens_out"] == generated > kept_tokens  # dropped samples count too
    assert (
        counters["kept"] == 12
        and counters["dropped_leak"] == 8
        and counters["dropped_wrong_answer"] == 8
    )
    assert (
        counters["bucket_easy"] == 2
        and counters["bucket_corner"] == 4
        and counters["problems_kept"] == 4
    )


def test_resume_after_a_failure_reuses_saved_chunks(tmp_path, tiny_llama, scripted, monkeypatch):
    problems = tmp_path / "p.jsonl"  # corner cases only (i % 3 != 0), one problem per chunk
    problems.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)})
            + "\n"
            for i in (1, 2, 4, 5)
        )
    )
    scripted()
    reference = run(make_pipeline(tmp_path / "ref", tiny_llama, problems, shards=1))
    cfg = make_pipeline(tmp_path / "run", tiny_llama, problems, shards=1)
    run(cfg, ["ingest", "generate"])
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "repair/0@chunk=raise")
    assert run(cfg).failed == {"repair": [0]}
    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    teacher = scripted()
    second = run(cfg)
    assert second.submitted == {"repair": [0]}
    assert second.plans[-1].manifest.outputs == reference.plans[-1].manifest.outputs
    first = outputs(cfg, second, "generate")[0]["problem"]  # chunk 0 = the shard's first problem
    assert teacher.calls and not any(first in prompt for prompt, _ in teacher.calls)


@pytest.mark.parametrize("exact,method", [(True, "exact-rescored"), (False, "topk-20")])
def test_topk_entropies_rescored_when_asked(tmp_path, tiny_llama, scripted, exact, method):
    scripted(entropy_method="topk-20")
    cfg = make_pipeline(
        tmp_path / "run",
        tiny_llama,
        write_problems(tmp_path / "p.jsonl", n=2),
        shards=1,
        repair={"exact_entropy": exact, "guided_per_problem": 0},
    )
    result = run(cfg)
    repairs = [r for r in outputs(cfg, result, "repair") if r["kind"] == "repair"]
    assert repairs and {r["breakpoint"]["entropy_method"] for r in repairs} == {method}
    if not exact:  # the stored (scripted) entropies put the surge on the "Oops" step
        assert {r["breakpoint"]["step_index"] for r in repairs} == {2}


def test_real_tiny_model_end_to_end(tmp_path, tiny_llama):
    cfg = make_pipeline(
        tmp_path / "run",
        tiny_llama,
        write_problems(tmp_path / "p.jsonl", n=3),
        shards=1,
        repair={"continuations_per_path": 2, "chunk_problems": 2},
    )
    result = run(cfg)
    assert not result.failed
    records = outputs(cfg, result, "repair")
    summaries = [r for r in records if r["kind"] == "repair_summary"]
    assert len(summaries) == 3  # a random model solves nothing: every problem is a corner case
    for record in records:
        jsonschema.validate(record, SCHEMA)
    for s in summaries:
        assert s["attempted"] == 2 * 2 + 1 and s["correct"] == s["kept"] + s["leaked"]
        assert sum(s["breakpoints"].values()) == 2


def _job(prefix="", placement="inline"):
    problem = {
        "problem_id": "q",
        "problem": "What is 1 + 1?",
        "reference_answer": "2",
        "k": 2,
        "n_correct": 0,
    }
    hint = build_hint("2")
    return Job("repair", problem, "P" + hint_prefill(prefix, hint), 1, 0, hint, placement, prefix)


class _S:
    def __init__(self, text):
        self.text, self.token_ids, self.seed, self.finish_reason = text, [], 0, "stop"


@pytest.mark.parametrize(
    "prefix,continuation,reason",
    [
        ("", "So \\boxed{2}.", "kept"),
        ("", "So \\boxed{3}.", "wrong_answer"),
        ("", "I keep going", "no_answer"),
        ("We get \\boxed{2}.\n\n", "and that is it.", "no_answer_in_continuation"),
        ("", "As hinted, \\boxed{2}.", "leak"),
        ("", "Hindsight tells me \\boxed{2}.", "leak"),
    ],
)
def test_judge_reasons(prefix, continuation, reason):
    judged, got = judge(_job(prefix), _S(continuation), RepairConfig())
    assert got == reason and (judged is not None) == (reason == "kept")


@pytest.mark.parametrize(
    "tally,dropped,reason",
    [
        ({"attempted": 4, "kept": 1, "paths": 2}, {"wrong_answer": 3}, "kept"),
        ({"attempted": 4, "paths": 2}, {"leak": 1, "wrong_answer": 3}, "all_leaked"),
        ({"attempted": 4, "paths": 2}, {"no_answer": 4}, "no_correct_continuation"),
        ({"attempted": 0, "paths": 0}, {}, "no_failed_trajectory"),
    ],
)
def test_summary_reasons(tally, dropped, reason):
    group = [{"problem_id": "q", "k": 4, "n_correct": 1}]
    summary = summary_record(group, "corner", tally, dropped, {})
    assert summary["reason"] == reason
    jsonschema.validate(summary, SCHEMA)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"guided_placement": "middle"}, "guided_placement"),
        ({"guided_buckets": ["easy"]}, "guided_buckets"),
        ({"paths_per_problem": -1}, "paths_per_problem"),
        ({"continuations_per_path": 0}, "continuations_per_path"),
        ({"reference_per_problem": -1}, "reference_per_problem"),
    ],
)
def test_config_errors_name_the_key(kw, message):
    with pytest.raises(ValueError, match=message):
        RepairConfig(**kw)


@pytest.mark.parametrize("placement", ["prompt", "start"])
def test_answer_guided_prompt_and_training_text(placement):
    from heal_batch.stages.repair.jobs import guided_job, stitch

    problem = {"problem_id": "q", "problem": "What is 1 + 1?", "reference_answer": "2"}
    job = guided_job(
        problem,
        lambda user, prefix: f"<u>{user}</u><a>{prefix or ''}",
        RepairConfig(guided_placement=placement),
    )
    assert job.kind == "answer_guided" and job.placement == placement and job.n == 2
    if placement == "prompt":  # the answer is in the user turn, the answer is untouched
        assert "the correct final answer is 2" in job.prompt and job.prompt.endswith("<a>")
    else:  # the hint opens the assistant turn
        assert job.prompt.startswith("<u>What is 1 + 1?</u><a>Wait. (Hindsight")
    assert stitch(job, "1 + 1 = 2, so \\boxed{2}.") == ("1 + 1 = 2, so \\boxed{2}.", 0)


def test_reference_problems_get_their_own_sample_count():
    """``reference_per_problem`` sizes the guided reference apart from the candidates; null
    keeps ``guided_per_problem``."""
    from heal_batch.stages.repair.jobs import guided_job

    problem = {"problem_id": "q", "problem": "What is 1 + 1?", "reference_answer": "2"}
    render = lambda user, prefix: f"<u>{user}</u><a>{prefix or ''}"  # noqa: E731
    cfg = RepairConfig(guided_per_problem=3, reference_per_problem=7)
    assert guided_job(problem, render, cfg).n == 3
    assert guided_job(problem, render, cfg, kind="guided_reference").n == 7
    same = RepairConfig(guided_per_problem=3)
    assert guided_job(problem, render, same, kind="guided_reference").n == 3
    off = RepairConfig(reference_per_problem=0)
    assert off.guided("easy", reference=True) is False and off.guided("hard") is True


def test_easy_problems_give_the_guided_reference(tmp_path, tiny_llama, scripted):
    """``reference_problems``: that many easy problems per shard, chosen by a stable hash of
    their ids, get answer-guided samples kept as PURE's guided reference; no summary, no bucket
    change, never a candidate."""
    from heal_batch.stages.repair.jobs import choose_reference

    scripted()
    problems = write_problems(tmp_path / "p.jsonl", n=9)  # q0, q3, q6 are easy
    cfg = make_pipeline(tmp_path / "run", tiny_llama, problems, shards=1)
    cfg.repair = RepairConfig(**{**vars(cfg.repair), "reference_problems": 2})
    result = run(cfg)
    assert not result.failed, result.failed
    records = outputs(cfg, result, "repair")
    for record in records:
        jsonschema.validate(record, SCHEMA)
    refs = [r for r in records if r["kind"] == "guided_reference"]
    chosen = {r["problem_id"] for r in refs}
    assert len(chosen) == 2 and chosen < {"q0", "q3", "q6"}
    assert all(r["id"].endswith("#gr0") and r["bucket"] == "easy" for r in refs)
    assert not {r["problem_id"] for r in records if r["kind"] == "repair_summary"} & chosen
    counters = next(p for p in result.plans if p.name == "repair").manifest.counters
    assert counters["bucket_easy"] == 3 and counters["kept_guided_reference"] == 2

    groups = [[{"problem_id": p}] for p in ("q0", "q1", "q3", "q6")]
    buckets = ["easy", "corner", "easy", "easy"]
    chosen = choose_reference(groups, buckets, 2, seed=0)
    assert chosen == choose_reference(groups[::-1], buckets[::-1], 2, seed=0)  # by id, not order
    assert len(chosen) == 2 and chosen < {"q0", "q3", "q6"}
