"""heal-batch sweep: grid parsing, variants, the comparison table on hand-made counters, and
end-to-end sweeps through the real CLI that share upstream stages (debug, local, Slurm)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from heal_batch.cli import main
from heal_batch.config import PipelineConfig
from heal_batch.pipeline.sweep import make_variants, parse_grid, seed_keys
from heal_batch.pipeline.sweep_table import render_markdown, sweep_table, variant_metrics
from tests.fixtures.toy_stage import write_problems

UPSTREAM = ("ingest", "generate")
STAGES = "ingest,generate,repair,score,curriculum"


def test_parse_grid_reads_yaml_lists_and_names_bad_input():
    assert parse_grid("repair.gear.strategy=[entropy-surge,random]") == (
        "repair.gear.strategy",
        ["entropy-surge", "random"],
    )
    assert parse_grid("repair.gear.backoff_steps=[1, 2]") == ("repair.gear.backoff_steps", [1, 2])
    for bad in ("repair.seed", "repair.seed=3", "=[1]", "repair.seed=[]"):
        with pytest.raises(ValueError, match="KEY="):
            parse_grid(bad)
    with pytest.raises(ValueError, match="plain flag"):
        parse_grid("executor=[debug,local]")


def test_variants_are_the_product_of_grids_and_seeds():
    fields = seed_keys(PipelineConfig())
    assert {"generate.seed", "repair.seed", "train.seed"} <= set(fields)
    grids = [("repair.gear.strategy", ["entropy-surge", "start"]), ("repair.top_p", [1.0, 0.9])]
    variants = make_variants(grids, [0, 1], ["generate.seed", "repair.seed"])
    assert len(variants) == 8
    assert variants[0].name == "strategy=entropy-surge,top_p=1.0,seed=0"
    assert variants[-1].overrides == {
        "repair.gear.strategy": "start",
        "repair.top_p": 0.9,
        "generate.seed": 1,
        "repair.seed": 1,
    }
    assert [v.name for v in make_variants([], None, fields)] == ["base"]


def _variant(name, repair=None, heal3=None, evaluate=None):
    return {
        "name": name,
        "overrides": {},
        "repair": repair,
        "sets": None if heal3 is None else {"heal-3": heal3},
        "evaluate": evaluate,
    }


def test_table_on_hand_made_counters():
    repair = {
        "bucket_corner": 4,
        "bucket_hard": 2,
        "kept_repair": 6,
        "kept_answer_guided": 2,
        "kept": 8,
        "dropped_leak": 2,
        "dropped_wrong_answer": 5,
        "total": 15,
    }
    heal3 = {
        "kept_repair": 3,
        "kept_answer_guided": 1,
        "kept_natural": 9,
        "dropped_top_lambda": 2,
        "dropped_above_reference_q99": 2,
        "dropped_duplicate": 7,
        "dropped_not_in_set": 1,
        "oracle_candidates": 8,
        "oracle_derived": 5,
        "oracle_kept": 4,
        "oracle_kept_derived": 3,
        "kept_repair_derived": 2,  # one derived repair PURE kept was dropped later (duplicate)
    }
    metrics = variant_metrics(_variant("a", repair, heal3))
    assert metrics == {
        "corner_problems": 4,
        "verified_repairs": 6,
        "repairs_per_corner_problem": 1.5,
        "answer_guided": 2,
        "leak_rate": 0.2,
        "pure_keep_rate": 0.5,
        "pure_precision": 0.75,
        "pure_recall": 0.6,
        "heal2_answer_guided": None,  # no heal-2 counters
        "heal3_repairs": 3,
        "heal3_derived": 2,
    }
    stage2 = _variant("a2", repair, heal3)
    stage2["sets"]["heal-2"] = {"kept_natural": 9, "kept_answer_guided": 1}
    assert variant_metrics(stage2)["heal2_answer_guided"] == 1
    empty = variant_metrics(_variant("b"))
    assert set(empty.values()) == {None}


def test_accuracy_deltas_paired_when_counts_exist_else_from_greedy_stderr():
    def record(checkpoint, counts=None, greedy=None, se=None):
        return {
            "checkpoint": checkpoint,
            "benchmark": "arith",
            "correct_counts": counts,
            "n_samples": 4 if counts else 0,
            "greedy_acc": greedy,
            "greedy_acc_stderr": se,
            "seeds": {"bootstrap": 0},
        }

    first = _variant(
        "first", evaluate=[record("heal-3", [4, 0, 2, 2]), record("rs", None, 0.5, 0.1)]
    )
    second = _variant(
        "second", evaluate=[record("heal-3", [4, 4, 2, 2]), record("rs", None, 0.6, 0.1)]
    )
    table = sweep_table([first, second])
    rows = {(a["variant"], a["checkpoint"]): a for a in table["accuracy"]}
    assert rows["first", "heal-3"]["delta"] == 0.0
    paired = rows["second", "heal-3"]
    assert (paired["metric"], paired["accuracy"], paired["delta"]) == ("avg_at_n", 0.75, 0.25)
    assert paired["interval"].startswith("paired") and paired["ci"][0] <= 0.25 <= paired["ci"][1]
    greedy = rows["second", "rs"]
    assert greedy["delta"] == pytest.approx(0.1)
    half = 1.959964 * 2**0.5 * 0.1
    assert greedy["ci"] == pytest.approx([0.1 - half, 0.1 + half])
    text = render_markdown(table)
    assert "| second | heal-3 | arith | avg_at_n | 0.750 | +0.250 [" in text
    assert "PURE precision" in text.splitlines()[4]


def _write_config(tmp_path: Path, model: Path, executor: str) -> Path:
    config = {
        "workdir": str(tmp_path / "run"),
        "executor": executor,
        "teacher": {"model": str(model), "system_prompt": None, "examples": [], "batch_size": 8},
        "ingest": {"paths": [str(write_problems(tmp_path / "p.jsonl", n=6))], "num_shards": 2},
        "generate": {"k": 2, "max_new_tokens": 16, "chunk_problems": 2},
        "repair": {
            "paths_per_problem": 2,
            "continuations_per_path": 3,
            "guided_per_problem": 1,
            "guided_buckets": ["hard", "corner"],
            "max_new_tokens": 16,
            "chunk_problems": 1,
            "gear": {"min_step_tokens": 1, "search_fraction": 0.9},
        },
        "score": {"reference_samples": 3},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _check_shared(workdir: Path, name: str = "sweep") -> dict:
    """Two variants that differ in repair.gear.strategy share ingest/generate, not repair."""
    record = json.loads((workdir / "sweeps" / f"{name}.json").read_text())
    first, second = record["variants"]
    assert all(v["status"] == "done" for v in record["variants"])
    for stage in UPSTREAM:
        assert first["run_keys"][stage] == second["run_keys"][stage]
    for stage in ("repair", "score", "curriculum"):
        assert first["run_keys"][stage] != second["run_keys"][stage]
    assert first["ran"] == STAGES.split(",")
    assert second["ran"] == ["repair", "score", "curriculum"]  # generate ran once
    assert len(list((workdir / "manifests" / "generate").glob("*.json"))) == 1
    assert len(list((workdir / "manifests" / "repair").glob("*.json"))) == 2
    table = json.loads((workdir / "report" / "sweep.json").read_text())
    assert [r["variant"] for r in table["rows"]] == [first["name"], second["name"]]
    assert (workdir / "report" / "sweep.md").read_text().startswith("# Sweep")
    return table


def test_sweep_on_debug_shares_upstream_and_compares(tmp_path, tiny_llama, monkeypatch, capsys):
    from tests.fixtures.scripted_teacher import ScriptedTeacher

    teacher = ScriptedTeacher(tiny_llama)
    monkeypatch.setattr("heal_batch.stages.teacher.make_generator", lambda cfg, *_: teacher)
    monkeypatch.delenv("HEAL_BATCH_DATA", raising=False)
    config = _write_config(tmp_path, tiny_llama, "debug")
    argv = [
        "sweep",
        "--config",
        str(config),
        "--stages",
        STAGES,
        "--grid",
        "repair.gear.strategy=[entropy-surge,start]",
    ]
    assert main(argv) == 0
    table = _check_shared(tmp_path / "run")
    plain = [p for p, _ in teacher.calls if "Hindsight" not in p and "For reference" not in p]
    assert len(plain) == 6  # each problem's k samples were asked for once, by one generate run
    surge, start = table["rows"]
    assert surge["corner_problems"] == start["corner_problems"] == 4  # i % 3 != 0 of 6 problems
    assert surge["verified_repairs"] > 0 and surge["leak_rate"] is not None
    assert surge["pure_keep_rate"] is not None
    assert "comparison:" in capsys.readouterr().out
    # running the same sweep again reruns nothing
    assert main(argv + ["--name", "again"]) == 0
    again = json.loads((tmp_path / "run" / "sweeps" / "again.json").read_text())
    assert [v["ran"] for v in again["variants"]] == [[], []]


def test_sweep_on_local_with_seeds(tmp_path, tiny_llama, monkeypatch):
    monkeypatch.delenv("HEAL_BATCH_DATA", raising=False)
    config = _write_config(tmp_path, tiny_llama, "local")
    argv = [
        "sweep",
        "--config",
        str(config),
        "--stages",
        "ingest,generate,repair",
        "--grid",
        "repair.gear.strategy=[entropy-surge,start]",
        "--seeds",
        "0,1",
        "--seed_fields",
        "repair.seed",
    ]
    assert main(argv) == 0
    record = json.loads((tmp_path / "run" / "sweeps" / "sweep.json").read_text())
    names = [v["name"] for v in record["variants"]]
    assert names == [
        "strategy=entropy-surge,seed=0",
        "strategy=entropy-surge,seed=1",
        "strategy=start,seed=0",
        "strategy=start,seed=1",
    ]
    assert len({v["run_keys"]["generate"] for v in record["variants"]}) == 1
    assert len({v["run_keys"]["repair"] for v in record["variants"]}) == 4
    assert [v["ran"] for v in record["variants"]][1:] == [["repair"]] * 3


@pytest.mark.slurm
def test_sweep_on_slurm_waits_for_each_variant(tmp_path, tiny_llama, slurm_cluster, monkeypatch):
    monkeypatch.delenv("HEAL_BATCH_DATA", raising=False)
    config = _write_config(tmp_path, tiny_llama, "slurm")
    argv = [
        "sweep",
        "--config",
        str(config),
        "--cluster",
        "local",
        "--stages",
        "ingest,generate,repair",
        "--grid",
        "repair.gear.strategy=[entropy-surge,start]",
    ]
    assert main(argv) == 0
    record = json.loads((tmp_path / "run" / "sweeps" / "sweep.json").read_text())
    first, second = record["variants"]
    assert first["run_keys"]["generate"] == second["run_keys"]["generate"]
    assert second["ran"] == ["repair"]


def test_new_repair_switches_keep_default_run_keys_and_are_sweepable():
    from heal_batch.method.gear import GearConfig
    from heal_batch.stages.repair.jobs import Work
    from heal_batch.stages.repair.stage import RepairConfig
    from heal_batch.store.runkeys import run_key

    def key(cfg):
        return run_key("repair", 1, {"config": cfg}, {"generate": "g"})

    base = RepairConfig()
    assert key(base) == key(RepairConfig(guided_for_corner=False, gear=GearConfig(backoff_steps=1)))
    assert key(RepairConfig(guided_for_corner=True)) != key(base)
    assert key(RepairConfig(gear=GearConfig(backoff_steps=2))) != key(base)
    assert not base.guided("corner") and base.guided("hard")
    assert RepairConfig(guided_for_corner=True).guided("corner")
    no_samples = RepairConfig(guided_for_corner=True, guided_per_problem=0)
    assert not no_samples.augments(Work([], "hard"))
