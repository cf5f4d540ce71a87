"""curriculum: stage membership, PURE pooling, caps, dedup, decontamination, modes, counters,
the ordered write through spill buckets, and run keys that hash benchmark contents.

Upstream records are hand-made (generate-like trajectories, score-like candidates) and written as
shards; the stage runs directly on them, and through the launcher with stand-in upstream stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import jsonschema
import pytest

from heal_batch.config import PipelineConfig
from heal_batch.data import benchmarks
from heal_batch.method.pure import PureConfig
from heal_batch.pipeline.contract import Counters, Task, TaskIO
from heal_batch.stages.curriculum import stage as cur
from heal_batch.stages.curriculum.stage import CurriculumConfig, CurriculumStage
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.layout import Layout
from heal_batch.store.shards import write_records

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "manifests" / "example.schema.json").read_text()
)
BENCH_PROBLEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
)
SYSTEM = "Reason step by step; put the answer in \\boxed{}."


def traj(
    pid: str, i: int, correct: bool, k: int, n_correct: int, text: str | None = None, problem=None
):
    return {
        "id": f"{pid}#s{i}",
        "problem_id": pid,
        "problem": problem or f"What is {pid}?",
        "reference_answer": "1",
        "system_prompt": SYSTEM,
        "completion": text or f"{pid} sample {i} \\boxed{{1}}",
        "correct": correct,
        "k": k,
        "n_correct": n_correct,
        "finish_reason": "stop",
        "token_ids": [1, 2],
    }


def cand(pid: str, j: int, kind: str, ratio, bucket: str, reason=None, text=None):
    tag = "c" if kind == "repair" else "ag"
    cid = f"{pid}#s0#c{j}" if kind == "repair" else f"{pid}#ag{j}"
    return {
        "kind": kind,
        "id": cid,
        "problem_id": pid,
        "problem": f"What is {pid}?",
        "bucket": bucket,
        "text": text or f"{pid} {tag}{j} \\boxed{{1}}",
        "correct": True,
        "system_prompt": SYSTEM,
        "user_prompt": f"What is {pid}?",
        "k": 4,
        "n_correct": 0,
        "pure": {"ratio": ratio, "unscored_reason": reason, "scorer": "tiny", "with_hint": False},
    }


def reference(tid: str, ratio: float):
    return {
        "kind": "reference",
        "id": tid,
        "problem_id": tid.split("#")[0],
        "pure": {"ratio": ratio},
    }


def base_records():
    """easy: 3/4 correct; hard: 2/5 (+4 answer-guided); corner: 0/4 (+5 repairs); references."""
    gen = [traj("easy", i, i < 3, 4, 3) for i in range(4)]
    gen += [traj("hard", i, i < 2, 5, 2) for i in range(5)]
    gen += [traj("corner", i, False, 4, 0) for i in range(4)]
    scored = [cand("hard", j, "answer_guided", 1.0 + j, "hard") for j in range(4)]
    scored += [cand("corner", j, "repair", 1.0 + j, "corner") for j in range(5)]
    scored += [{"kind": "repair_summary", "id": "corner#summary", "problem_id": "corner"}]
    scored += [reference(f"easy#s{i}", 2.0 + i) for i in range(3)]
    return gen, scored


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """No benchmark data anywhere (unless a test passes data_dir)."""
    monkeypatch.delenv("HEAL_BATCH_DATA", raising=False)
    monkeypatch.setattr(benchmarks, "REPO_DATA", tmp_path / "absent")


def run_all(tmp_path, gen, scored, cfg: CurriculumConfig, teacher=None, data="", pure=None):
    """Every task of the stage on the given shards: {set: (records, counters)}."""
    layout = Layout(tmp_path / "run")
    layout.store.mkdir(parents=True, exist_ok=True)
    shards = [
        write_records(layout.store, gen[: len(gen) // 2]),
        write_records(layout.store, gen[len(gen) // 2 :]),
    ]
    shards.append(write_records(layout.store, scored))
    stage = CurriculumStage(cfg, teacher or TeacherConfig(user_suffix=""), pure=pure)
    out = {}
    for index, name in enumerate(cfg.set_names()):
        io = TaskIO(layout, "curriculum", "c" * 64, index)
        counters = stage.run(Task("curriculum", index, (*shards, cur.DATA_PREFIX + data)), io)
        address, _ = io.close()
        out[name] = (list(io.read(address)), counters)
    return out


def ids(records):
    return sorted(r["source_id"] for r in records)


def check_counters(counters: Counters):
    dropped = sum(v for k, v in counters.items() if k.startswith("dropped_"))
    assert counters["total"] == counters["kept"] + dropped


def test_stage_membership_modes_and_pure(tmp_path, no_data):
    gen, scored = base_records()
    no_q95 = PureConfig(reference_percentile=None)
    sets = run_all(tmp_path, gen, scored, CurriculumConfig(), pure=no_q95)
    assert list(sets) == ["heal-1", "heal-2", "heal-3", "rs", "flat"]
    natural = ["easy#s0", "easy#s1", "easy#s2", "hard#s0", "hard#s1"]
    # top lambda = ceil(0.2 * 4) = 1 answer-guided (ratio 4) and ceil(0.2 * 5) = 1 repair (ratio 5)
    guided = ["hard#ag0", "hard#ag1", "hard#ag2"]
    repairs = ["corner#s0#c0", "corner#s0#c1", "corner#s0#c2", "corner#s0#c3"]
    assert ids(sets["heal-1"][0]) == sorted(natural) == ids(sets["rs"][0])
    assert ids(sets["heal-2"][0]) == sorted(natural + guided)
    assert ids(sets["heal-3"][0]) == sorted(natural + guided + repairs) == ids(sets["flat"][0])
    c1, c3 = sets["heal-1"][1], sets["heal-3"][1]
    assert c1["total"] == c3["total"] == 13 + 9
    assert c1["dropped_not_in_set"] == 9 and c1["dropped_incorrect"] == 8 and c1["kept"] == 5
    assert (
        c3["dropped_top_lambda"] == 2 and c3["kept_repair"] == 4 and c3["kept_answer_guided"] == 3
    )
    assert c3["reference_ratios"] == 3 and c3["decontamination_skipped_no_data"] == 1
    for records, counters in sets.values():
        check_counters(counters)
        for record in records:
            jsonschema.validate(record, SCHEMA)
            assert record["id"] == f"{record['set']}:{record['source_id']}"
    example = next(r for r in sets["heal-3"][0] if r["source_id"] == "corner#s0#c1")
    assert example["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is corner?"},
        {"role": "assistant", "content": "corner c1 \\boxed{1}"},
    ]
    assert example["bucket"] == "corner"
    assert {r["bucket"] for r in sets["heal-1"][0] if r["problem_id"] == "hard"} == {"hard"}  # 2/5
    assert {r["bucket"] for r in sets["heal-1"][0] if r["problem_id"] == "easy"} == {"easy"}


def test_pure_reference_rule_unscored_and_pooling(tmp_path, no_data):
    gen, _ = base_records()
    scored = [cand("hard", j, "answer_guided", 10.0 + j, "hard") for j in range(5)]
    scored += [cand("corner", j, "repair", 1.0 + j, "corner") for j in range(5)]
    scored += [cand("corner", 9, "repair", None, "corner", reason="no_boxed_answer")]
    scored += [reference(f"easy#s{i}", r) for i, r in enumerate([1.0, 2.0, 3.0])]
    unbounded = {"max_repairs_per_problem": None, "max_answer_guided_per_problem": None}
    unbounded["baselines"] = []
    together = run_all(
        tmp_path / "a",
        gen,
        scored,
        CurriculumConfig(**unbounded),
        pure=PureConfig(pooling="together", reference_percentile=None),
    )["heal-3"]
    # 10 scored: top 2 are both answer-guided (13, 14); every repair survives
    assert together[1]["dropped_top_lambda"] == 2 and together[1]["kept_repair"] == 5
    assert together[1]["dropped_no_boxed_answer"] == 1
    small = PureConfig(min_reference=3)  # a reference of 3 is applied from 3 on
    per_kind = run_all(tmp_path / "b", gen, scored, CurriculumConfig(**unbounded), pure=small)
    per_kind = per_kind["heal-3"]
    # per kind: top 1 of each; q95 of [1, 2, 3] = 2.9 drops the repairs 3 and 4 and every guided
    c = per_kind[1]
    assert c["dropped_top_lambda"] == 2 and c["dropped_above_reference_q95"] == 2 + 4
    assert ids(r for r in per_kind[0] if r["kind"] == "repair") == ["corner#s0#c0", "corner#s0#c1"]
    check_counters(c)


def test_caps_are_seeded_by_id_not_by_shard_order(tmp_path, no_data):
    gen, _ = base_records()
    scored = [cand("corner", j, "repair", 1.0, "corner") for j in range(8)]
    cfg = CurriculumConfig(max_repairs_per_problem=3, baselines=["flat"])
    keep_all = PureConfig(drop_top_fraction=0.0)
    first = run_all(tmp_path / "a", gen, scored, cfg, pure=keep_all)["flat"]
    second = run_all(tmp_path / "b", gen, scored[::-1], cfg, pure=keep_all)["flat"]
    assert first[1]["dropped_cap"] == 5 and first[1]["kept_repair"] == 3
    assert ids(first[0]) == ids(second[0])
    other_seed = run_all(
        tmp_path / "c",
        gen,
        scored,
        CurriculumConfig(max_repairs_per_problem=3, baselines=["flat"], seed=1),
        pure=keep_all,
    )["flat"]
    assert ids(other_seed[0]) != ids(first[0])  # 56 choices: a different seed picks differently


def test_exact_and_near_duplicates_keep_the_earliest_stage(tmp_path, no_data):
    same = "We add. So \\boxed{2}."
    gen = [
        traj("p", 0, True, 4, 4, same),
        traj("p", 1, True, 4, 4, same),
        traj("p", 2, True, 4, 4, "we ADD so boxed 2"),
        traj("p", 3, True, 4, 4, "Other. \\boxed{2}"),
        # a dropped sample (wrong answer) does not make a later identical one a duplicate
        traj("a", 0, False, 2, 1, "Guess. \\boxed{3}"),
        traj("a", 1, True, 2, 1, "Guess. \\boxed{3}"),
    ]
    scored = [cand("p", 0, "repair", 1.0, "corner", text=same)]
    keep_all = PureConfig(drop_top_fraction=0.0)
    sets = run_all(tmp_path, gen, scored, CurriculumConfig(baselines=[]), pure=keep_all)
    records, counters = sets["heal-3"]
    assert ids(records) == ["a#s1", "p#s0", "p#s3"] and counters["dropped_incorrect"] == 1
    assert counters["dropped_duplicate"] == 2 and counters["dropped_near_duplicate"] == 1
    no_near = run_all(
        tmp_path / "b", gen, scored, CurriculumConfig(baselines=[], near_dedup=False), pure=keep_all
    )["heal-3"]
    assert ids(no_near[0]) == ["a#s1", "p#s0", "p#s2", "p#s3"]


def test_decontamination_against_benchmark_files(tmp_path, no_data):
    data = tmp_path / "data"
    data.mkdir()
    (data / "gsm8k_test.jsonl").write_text(
        json.dumps({"problem": BENCH_PROBLEM, "answer": "72"}) + "\n"
    )
    leaked = f"Question: {BENCH_PROBLEM} How many clips did Natalia sell altogether?"
    gen = [traj("leak", i, True, 2, 2, problem=leaked) for i in range(2)]
    gen += [traj("clean", i, True, 2, 2) for i in range(2)]
    cfg = CurriculumConfig(benchmarks=["gsm8k"], data_dir=str(data), baselines=[])
    stage = CurriculumStage(cfg, TeacherConfig())
    (task,) = {t.inputs for t in stage.plan({"generate": _manifest(1), "score": _manifest(1)})}
    assert task[-1] == cur.DATA_PREFIX + str(data.resolve())
    sets = run_all(tmp_path, gen, [], cfg, data=str(data))
    records, counters = sets["heal-1"]
    assert ids(records) == ["clean#s0", "clean#s1"]
    assert counters["dropped_contaminated"] == 2 and counters["benchmark_problems"] == 1

    before = stage.fingerprint()
    (data / "gsm8k_test.jsonl").write_text(
        json.dumps({"problem": "Something else entirely."}) + "\n"
    )
    assert stage.fingerprint() != before
    assert (
        CurriculumStage(CurriculumConfig(decontaminate=False), TeacherConfig()).fingerprint() == ""
    )
    missing = CurriculumStage(CurriculumConfig(), TeacherConfig())
    assert missing.data_dir() is None and missing.fingerprint() == "decontamination-skipped:no-data"
    with pytest.raises(FileNotFoundError, match="curriculum.data_dir"):
        CurriculumStage(
            CurriculumConfig(data_dir=str(tmp_path / "nope")), TeacherConfig()
        ).fingerprint()


def test_user_suffix_system_prompt_modes_and_non_cumulative(tmp_path, no_data):
    gen, scored = base_records()
    teacher = TeacherConfig(user_suffix=" Think.")
    sets = run_all(
        tmp_path,
        gen,
        scored,
        CurriculumConfig(system_prompt=None, cumulative=False, baselines=[]),
        teacher,
    )
    natural = sets["heal-1"][0][0]
    assert natural["messages"] == [
        {"role": "user", "content": "What is easy? Think."},
        {"role": "assistant", "content": "easy sample 0 \\boxed{1}"},
    ]
    assert {r["kind"] for r in sets["heal-2"][0]} == {"answer_guided"}
    assert {r["kind"] for r in sets["heal-3"][0]} == {"repair"}
    custom = run_all(
        tmp_path / "b", gen, scored, CurriculumConfig(system_prompt="Be brief.", baselines=[])
    )
    assert custom["heal-1"][0][0]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="curriculum.baselines: unknown baseline 'dpo'"):
        CurriculumConfig(baselines=["dpo"])
    with pytest.raises(ValueError, match="curriculum.ignore_grams_in_problems"):
        CurriculumConfig(ignore_grams_in_problems=-1)
    with pytest.raises(ValueError, match="curriculum.benchmarks: unknown 'mmlu'"):
        CurriculumConfig(benchmarks=["mmlu"])


def test_duplicate_sample_ids_are_an_error(tmp_path, no_data):
    gen, scored = base_records()
    with pytest.raises(ValueError, match="appears twice"):
        run_all(tmp_path, gen + gen[:1], scored, CurriculumConfig(baselines=[]))


# --- through the launcher, with stand-in generate and score stages --------------------------


def _manifest(n):
    from types import SimpleNamespace

    return SimpleNamespace(tasks=[SimpleNamespace(index=i) for i in range(n)])


@dataclass(frozen=True)
class FakeUpstreamConfig:
    records: list = field(default_factory=list)


class FakeGenerate:
    name: ClassVar[str] = "generate"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ()
    section: ClassVar[str] = "fake_generate"
    shared: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[str] = "array"

    def __init__(self, config):
        self.config = config

    def fingerprint(self):
        return ""

    def plan(self, upstream):
        return [Task(self.name, i, ()) for i in range(2)]

    def run(self, task, io):
        for record in self.config.records[task.index :: 2]:
            io.write(record)
        counters = Counters()
        counters.keep(len(self.config.records[task.index :: 2]))
        return counters


class FakeScore(FakeGenerate):
    name: ClassVar[str] = "score"
    section: ClassVar[str] = "fake_score"
    shared: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[str] = "array"

    def plan(self, upstream):
        return [Task(self.name, 0, ())]

    def run(self, task, io):
        for record in self.config.records:
            io.write(record)
        return Counters(total=len(self.config.records))


@dataclass
class CurriculumPipeline(PipelineConfig):
    fake_generate: FakeUpstreamConfig = field(default_factory=FakeUpstreamConfig)
    fake_score: FakeUpstreamConfig = field(default_factory=FakeUpstreamConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)


def fake_dag(monkeypatch):
    """generate and score replaced by stand-ins; curriculum registered (in DAG order after them)."""
    from heal_batch.pipeline.registry import STAGES

    for cls in (FakeGenerate, FakeScore, CurriculumStage):
        monkeypatch.setitem(STAGES, cls.name, cls)


def test_through_the_launcher_manifest_counts_every_drop(tmp_path, no_data, monkeypatch):
    from heal_batch.executors import make_executor
    from heal_batch.pipeline.launch import launch
    from heal_batch.store.shards import read_records, shard_path

    fake_dag(monkeypatch)
    gen, scored = base_records()
    cfg = CurriculumPipeline(
        workdir=str(tmp_path / "run"),
        executor="debug",
        fake_generate=FakeUpstreamConfig(gen),
        fake_score=FakeUpstreamConfig(scored),
        pure=PureConfig(min_reference=1),  # base_records' reference holds 3 ratios
    )
    result = launch(
        cfg, make_executor("debug"), ["generate", "score", "curriculum"], echo=lambda *_: None
    )
    assert not result.failed and result.submitted["curriculum"] == [0, 1, 2, 3, 4]
    plan = next(p for p in result.plans if p.name == "curriculum")
    manifest = plan.manifest
    assert manifest.sealed
    layout = Layout(cfg.workdir)
    heal3 = list(read_records(shard_path(layout.store, manifest.tasks[2].output)))
    assert {r["set"] for r in heal3} == {"heal-3"} and len(heal3) == manifest.tasks[2].records == 11
    assert manifest.tasks[2].counters["dropped_top_lambda"] == 2
    assert not (layout.scratch("curriculum", plan.key, 2) / "spill").exists()  # cleaned up


def test_real_repair_and_score_records(tmp_path, tiny_llama, no_data, monkeypatch):
    """ingest -> generate -> repair -> score (scripted teacher, real tiny scorer) -> curriculum."""
    from heal_batch.executors import make_executor
    from heal_batch.pipeline.launch import launch
    from heal_batch.stages.score.stage import ScoreConfig
    from heal_batch.store.shards import read_records, shard_path
    from tests.fixtures.scripted_teacher import ScriptedTeacher, make_pipeline
    from tests.fixtures.toy_stage import write_problems

    teacher = ScriptedTeacher(tiny_llama)
    monkeypatch.setattr("heal_batch.stages.teacher.make_generator", lambda cfg, *_: teacher)
    cfg = make_pipeline(
        tmp_path / "run",
        tiny_llama,
        write_problems(tmp_path / "p.jsonl", n=6),
        shards=2,
        score=ScoreConfig(reference_samples=3),
    )
    stages = ["ingest", "generate", "repair", "score", "curriculum"]
    result = launch(cfg, make_executor("debug"), stages, echo=lambda *_: None)
    assert not result.failed
    plan = next(p for p in result.plans if p.name == "curriculum")
    layout = Layout(cfg.workdir)
    sets = {}
    for entry, name in zip(plan.manifest.tasks, cfg.curriculum.set_names(), strict=True):
        sets[name] = list(read_records(shard_path(layout.store, entry.output)))
        check_counters(Counters(entry.counters))
        for record in sets[name]:
            jsonschema.validate(record, SCHEMA)
    kinds = {name: {r["kind"] for r in records} for name, records in sets.items()}
    assert kinds["heal-1"] == kinds["rs"] == {"natural"}
    assert kinds["heal-3"] == kinds["flat"] == {"natural", "answer_guided", "repair"}
    assert {r["id"] for r in sets["heal-1"]} <= {
        r["id"].replace("heal-2", "heal-1") for r in sets["heal-2"]
    }
    counters = plan.manifest.tasks[2].counters
    assert 0 < counters["reference_ratios"] <= 2 * 3  # up to reference_samples per generate shard
    assert counters["dropped_top_lambda"] >= 2  # per-kind pools: at least one of each kind


def test_bucket_thresholds_are_the_ones_repair_used():
    from heal_batch.stages.curriculum.rows import sample_bucket
    from heal_batch.stages.repair.stage import RepairConfig

    row = traj("p", 0, True, 4, 3)  # pass rate 0.75
    default = CurriculumStage(CurriculumConfig(), TeacherConfig(user_suffix=""))
    strict = CurriculumStage(
        CurriculumConfig(), TeacherConfig(user_suffix=""), RepairConfig(easy_min_pass_rate=0.8)
    )
    assert sample_bucket(row, default._pace) == "easy"
    assert sample_bucket(row, strict._pace) == "hard"
    assert "repair" in CurriculumStage.shared  # a threshold change re-runs curriculum


def test_run_key_hashes_benchmark_contents_not_their_folder(tmp_path, no_data, monkeypatch):
    """The same benchmark files in two folders (two checkouts) give one curriculum run key."""
    from heal_batch.pipeline.launch import plan

    for copy in ("a", "b", "other"):
        (tmp_path / copy).mkdir()
        text = BENCH_PROBLEM if copy != "other" else "Something else entirely."
        (tmp_path / copy / "gsm8k_test.jsonl").write_text(json.dumps({"problem": text}) + "\n")

    def key(data_dir: str | None) -> str:
        curriculum = CurriculumConfig(benchmarks=["gsm8k"], data_dir=data_dir)
        cfg = PipelineConfig(workdir=str(tmp_path / "run"), curriculum=curriculum)
        plans = plan(cfg, ["ingest", "generate", "repair", "score", "curriculum"])
        return next(p.key for p in plans if p.name == "curriculum")

    configured = key(str(tmp_path / "a"))
    assert key(str(tmp_path / "b")) == configured
    monkeypatch.setenv("HEAL_BATCH_DATA", str(tmp_path / "b"))
    assert key(None) == configured  # found through $HEAL_BATCH_DATA instead of the config
    assert key(str(tmp_path / "other")) != configured


def test_small_spill_buckets_write_the_same_shard(tmp_path, no_data, monkeypatch):
    """The external sort: one example per bucket, or few big ones, gives the same set shard."""
    from heal_batch.stages.curriculum import write

    gen, scored = base_records()
    cfg = CurriculumConfig(baselines=["flat"])
    whole = run_all(tmp_path / "a", gen, scored, cfg)
    monkeypatch.setattr(write, "SPILL_BYTES", 1)
    tiny = run_all(tmp_path / "b", gen, scored, cfg)
    monkeypatch.setattr(write, "MAX_BUCKETS", 2)
    capped = run_all(tmp_path / "c", gen, scored, cfg)
    assert whole == tiny == capped
    assert [r["source_id"] for r in whole["flat"][0]][:3] == ["easy#s0", "easy#s1", "easy#s2"]


def test_decontamination_is_frequent_grams_then_contaminated():
    from heal_batch.method.decontam import (
        build_ngram_index,
        contaminated,
        contaminated_texts,
        frequent_grams,
    )

    stock = "where m and n are relatively prime positive integers find m plus n"
    index = build_ngram_index([f"A cone of volume 3 {stock}", BENCH_PROBLEM], n=6)
    texts = [f"Problem {i}: {stock}" for i in range(3)] + [f"Q: {BENCH_PROBLEM}", "Clean text."]
    for ignore in (None, 1, 3, 4):
        frequent = frequent_grams(set(texts), index, ignore) if ignore else frozenset()
        expected = {t for t in texts if contaminated(t, index.without(frequent))}
        assert contaminated_texts(texts, index, ignore) == expected
    assert contaminated_texts(texts, index, 3) == {f"Q: {BENCH_PROBLEM}"}


def test_pure_reference_chooses_natural_or_guided(tmp_path, no_data):
    """The percentile rules read the reference ``pure.reference`` names; a guided reference is
    never trained on. Natural R are 2, 3, 4 (q95 3.9); guided R are 6, 7, 8 (q95 7.9)."""
    gen, scored = base_records()
    scored = [dict(r) for r in scored]
    guided = [cand("easy", j, "answer_guided", 6.0 + j, "easy") for j in range(3)]
    for j, r in enumerate(guided):
        r.update(kind="guided_reference", id=f"easy#gr{j}")
    cfg = CurriculumConfig(baselines=[], max_repairs_per_problem=None)
    pure = {"drop_top_fraction": 0.0, "answer_reference_percentile": None, "min_reference": 3}
    natural = run_all(tmp_path / "n", gen, scored + guided, cfg, pure=PureConfig(**pure))
    by_guided = run_all(
        tmp_path / "g", gen, scored + guided, cfg, pure=PureConfig(**pure, reference="guided")
    )
    # repairs R 1..5: natural q95 3.9 drops 4 and 5; guided q95 7.9 drops none
    assert natural["heal-3"][1]["kept_repair"] == 3 and by_guided["heal-3"][1]["kept_repair"] == 5
    assert (
        natural["heal-3"][1]["reference_ratios"] == 3 == by_guided["heal-3"][1]["reference_ratios"]
    )
    for sets in (natural, by_guided):
        assert not any("#gr" in r["source_id"] for records, _ in sets.values() for r in records)


def test_a_reference_below_min_reference_turns_its_percentile_rules_off(tmp_path, no_data):
    """A percentile of too few values is not an estimate: with fewer than ``min_reference``
    reference values the rules are off (counted once, in heal-3, and warned), from it on they
    apply. Natural R are 2, 3, 4 (q95 3.9); repairs R 1..5."""
    gen, scored = base_records()
    cfg = CurriculumConfig(baselines=[], max_repairs_per_problem=None)
    pure = {"drop_top_fraction": 0.0, "answer_reference_percentile": None}
    applied = run_all(tmp_path / "a", gen, scored, cfg, pure=PureConfig(**pure, min_reference=3))
    off = run_all(tmp_path / "b", gen, scored, cfg, pure=PureConfig(**pure, min_reference=4))
    assert applied["heal-3"][1]["kept_repair"] == 3 and off["heal-3"][1]["kept_repair"] == 5
    assert "reference_too_small" not in applied["heal-3"][1]
    assert off["heal-3"][1]["reference_too_small"] == 1
    assert "reference_too_small" not in off["heal-1"][1]  # once per run
    disabled = PureConfig(**pure, reference_percentile=None, min_reference=4)
    quiet = run_all(tmp_path / "c", gen, scored, cfg, pure=disabled)  # no rule on: nothing off
    assert "reference_too_small" not in quiet["heal-3"][1]


def test_a_guided_reference_needs_repair_to_make_it():
    from heal_batch.config import PipelineConfig
    from heal_batch.stages.repair.stage import RepairConfig

    with pytest.raises(ValueError, match="repair.reference_problems"):
        PipelineConfig(pure=PureConfig(reference="guided"))
    PipelineConfig(pure=PureConfig(reference="guided"), repair=RepairConfig(reference_problems=4))
