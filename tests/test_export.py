"""heal-batch export: curriculum splits (parquet, HF DatasetDict, chat JSONL) with lineage, and
record shards as parquet with decoded per-token arrays.

The run folder is real (launcher, manifests, receipts, shards): stand-in generate, score and
curriculum stages write records of the shapes in manifests/*.schema.json (the examples are
validated against example.schema.json); the curriculum stand-in reads its upstream shards through
resolved task inputs, as the real stage does, so the export finds their lineage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from heal_batch.cli import main
from heal_batch.config import PipelineConfig
from heal_batch.pipeline.contract import Counters, Task, ref
from heal_batch.records import encode_floats

datasets = pytest.importorskip("datasets")
SPLITS = {"heal_1", "heal_2", "heal_3", "rs", "flat"}
MODEL = "tiny/teacher"
SYSTEM = "Reason step by step; put the answer in \\boxed{}."
EXAMPLE = json.loads((Path(__file__).parents[1] / "manifests" / "example.schema.json").read_text())
SETS = {
    "heal-1": {"natural"},
    "heal-2": {"natural", "answer_guided"},
    "heal-3": {"natural", "answer_guided", "repair"},
    "rs": {"natural"},
    "flat": {"natural", "answer_guided", "repair"},
}


def trajectory(pid: str, i: int, n_correct: int, k: int = 4) -> dict:
    correct = i < n_correct
    return {
        "id": f"{pid}#s{i}",
        "problem_id": pid,
        "problem": f"What is {pid}?",
        "reference_answer": "1",
        "system_prompt": SYSTEM,
        "model": MODEL,
        "seed": 1000 + i,
        "completion": f"{pid} sample {i}.\n\nSo \\boxed{{{1 if correct else 2}}}.",
        "correct": correct,
        "k": k,
        "n_correct": n_correct,
        "finish_reason": "stop",
        "token_ids": [5, 6, 7],
        "offsets": [0, 2, 4],
        "entropies": encode_floats([0.5, 2.0, 0.25]),
        "logprobs": encode_floats([-0.5, -1.0, -0.125]),
    }


def candidate(pid: str, j: int, kind: str) -> dict:
    repair = kind == "repair"
    return {
        "kind": kind,
        "id": f"{pid}#s0#c{j}" if repair else f"{pid}#ag{j}",
        "problem_id": pid,
        "problem": f"What is {pid}?",
        "bucket": "corner" if repair else "hard",
        "k": 4,
        "n_correct": 0,
        "text": f"{pid} {kind} {j}.\n\nSo \\boxed{{1}}.",
        "correct": True,
        "system_prompt": SYSTEM,
        "user_prompt": f"What is {pid}?",
        "model": MODEL,
        "seed": 77 + j,
        "breakpoint": {"step_index": 1, "token_index": 9 + j} if repair else None,
        "pure": {
            "ratio": 1.0 + j,
            "answer_nll": 0.1,
            "reasoning_tokens": 20,
            "unscored_reason": None,
        },
    }


def upstream_records() -> tuple[list[dict], list[dict]]:
    gen = [
        trajectory(pid, i, n)
        for pid, n in (("easy", 3), ("corner", 0), ("hard", 1))
        for i in range(4)
    ]
    scored = [candidate("corner", j, "repair") for j in range(3)]
    scored += [candidate("hard", j, "answer_guided") for j in range(2)]
    scored += [
        {"kind": "repair_summary", "id": "corner#summary", "problem_id": "corner"},
        {
            "kind": "reference",
            "id": "easy#s0",
            "problem_id": "easy",
            "pure": {"ratio": 2.0, "answer_nll": 0.2},
        },
    ]
    return gen, scored


@dataclass(frozen=True)
class CannedRecords:
    records: list = field(default_factory=list)


class CannedGenerate:
    """generate's stand-in: two tasks, records alternating between them."""

    name: ClassVar[str] = "generate"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ()
    section: ClassVar[str] = "canned_generate"
    shared: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[str] = "array"
    tasks: ClassVar[int] = 2

    def __init__(self, config):
        self.config = config

    def fingerprint(self):
        return ""

    def plan(self, upstream):
        return [Task(self.name, i, ()) for i in range(self.tasks)]

    def run(self, task, io):
        mine = self.config.records[task.index :: self.tasks]
        for record in mine:
            io.write(record)
        return Counters(total=len(mine), kept=len(mine))


class CannedScore(CannedGenerate):
    name: ClassVar[str] = "score"
    section: ClassVar[str] = "canned_score"
    tasks: ClassVar[int] = 1


class CannedCurriculum(CannedGenerate):
    """curriculum's stand-in: one task per set, reading every generate and score shard."""

    name: ClassVar[str] = "curriculum"
    upstream: ClassVar[tuple[str, ...]] = ("generate", "score")
    section: ClassVar[str] = "canned_score"

    def plan(self, upstream):
        refs = tuple(ref(s, t.index) for s in self.upstream for t in upstream[s].tasks)
        return [Task(self.name, i, refs) for i in range(len(SETS))]

    def run(self, task, io):
        name = list(SETS)[task.index]
        for address in task.inputs:
            for r in io.read(address):
                kind = r.get("kind", "natural")
                if kind in SETS[name] and r["correct"]:
                    user = r.get("user_prompt") or r["problem"]
                    messages = [
                        {"role": "system", "content": r["system_prompt"]},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": r.get("text") or r["completion"]},
                    ]
                    io.write(
                        {
                            "id": f"{name}:{r['id']}",
                            "set": name,
                            "kind": kind,
                            "bucket": r.get("bucket"),
                            "problem_id": r["problem_id"],
                            "source_id": r["id"],
                            "messages": messages,
                        }
                    )
        return Counters()


@dataclass
class ExportPipeline(PipelineConfig):
    canned_generate: CannedRecords = field(default_factory=CannedRecords)
    canned_score: CannedRecords = field(default_factory=CannedRecords)


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    from heal_batch.executors import make_executor
    from heal_batch.pipeline.launch import launch
    from heal_batch.pipeline.registry import STAGES

    for cls in (CannedGenerate, CannedScore, CannedCurriculum):
        monkeypatch.setitem(STAGES, cls.name, cls)
    gen, scored = upstream_records()
    cfg = ExportPipeline(
        workdir=str(tmp_path / "run"),
        executor="debug",
        canned_generate=CannedRecords(gen),
        canned_score=CannedRecords(scored),
    )
    result = launch(
        cfg, make_executor("debug"), ["generate", "score", "curriculum"], echo=lambda *_: None
    )
    assert not result.failed
    return tmp_path / "run"


def test_curriculum_as_hf_dataset_and_parquet_with_lineage(
    run_folder, tmp_path, tiny_llama, capsys
):
    out = tmp_path / "export"
    assert (
        main(
            [
                "export",
                "--workdir",
                str(run_folder),
                "--stage",
                "curriculum",
                "--out",
                str(out),
                "--format",
                "hf",
            ]
        )
        == 0
    )
    assert "heal_3.parquet" in capsys.readouterr().out
    on_disk = datasets.load_from_disk(str(out / "hf"))
    files = {name: str(out / f"{name}.parquet") for name in SPLITS}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert set(on_disk) == set(loaded) == SPLITS
    for name in SPLITS:
        assert on_disk[name].to_list() == loaded[name].to_list()

    import jsonschema

    heal3 = {row["source_id"]: row for row in loaded["heal_3"]}
    for row in heal3.values():
        jsonschema.validate({k: row[k] for k in EXAMPLE["required"]}, EXAMPLE)
    assert {row["kind"] for row in heal3.values()} == {"natural", "answer_guided", "repair"}
    assert {row["kind"] for row in loaded["heal_1"]} == {"natural"}
    assert {row["set"] for row in loaded["heal_2"]} == {"heal-2"}
    repair = heal3["corner#s0#c0"]
    assert (repair["breakpoint_token"], repair["breakpoint_step"]) == (9, 1)
    assert repair["pure_ratio"] == 1.0
    assert (repair["model"], repair["seed"], repair["problem_id"]) == (MODEL, 77, "corner")
    natural = heal3["easy#s1"]
    assert natural["pure_ratio"] is None and natural["breakpoint_token"] is None
    assert natural["seed"] == 1001 and len(natural["source_shard"]) == 64
    assert natural["source_shard"] != repair["source_shard"]  # a generate shard vs the score shard
    assert [m["role"] for m in natural["messages"]] == ["system", "user", "assistant"]

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    text = tokenizer.apply_chat_template(repair["messages"], tokenize=False)
    assert "corner repair 0." in text and "What is corner?" in text and SYSTEM in text
    record = json.loads((out / "export.json").read_text())
    assert record["stage"] == "curriculum" and record["files"]["heal_3.parquet"] == len(heal3)


def test_chat_jsonl_and_record_shards_as_parquet(run_folder, tmp_path):
    import polars as pl

    chat = tmp_path / "chat"
    args = ["export", "--workdir", str(run_folder), "--out", str(chat), "--format", "chat"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (chat / "flat.jsonl").read_text().splitlines()]
    assert rows and all(row["messages"][-1]["role"] == "assistant" for row in rows)
    assert {"source_shard", "model", "seed", "pure_ratio"} <= set(rows[0])
    assert main(args) == 0  # an earlier export in --out is replaced

    gen = tmp_path / "gen"
    assert (
        main(["export", "--workdir", str(run_folder), "--stage", "generate", "--out", str(gen)])
        == 0
    )
    frame = pl.scan_parquet(gen / "generate-*.parquet").collect()
    assert frame.height == 12 and frame.schema["entropies"] == pl.List(pl.Float32)
    first = frame.filter(pl.col("id") == "easy#s0").row(0, named=True)
    assert first["entropies"] == [0.5, 2.0, 0.25] and first["logprobs"][2] == -0.125

    score = tmp_path / "score"
    assert (
        main(["export", "--workdir", str(run_folder), "--stage", "score", "--out", str(score)]) == 0
    )
    table = pl.read_parquet(score / "score-00000-of-00001.parquet")
    assert set(table["kind"]) == {"repair", "answer_guided", "repair_summary", "reference"}
    repair = table.filter(pl.col("id") == "corner#s0#c2").row(0, named=True)
    assert repair["pure"]["ratio"] == 3.0 and repair["breakpoint"]["token_index"] == 11


def test_unify_schemas_types_null_columns_across_files(tmp_path):
    import polars as pl

    from heal_batch.export.tables import records_frame, unify_schemas

    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    records_frame([{"id": "a", "breakpoint": None}]).write_parquet(paths[0])
    records_frame([{"id": "b", "breakpoint": {"token_index": 3}, "x": 1.5}]).write_parquet(paths[1])
    unify_schemas(paths)
    assert pl.read_parquet_schema(paths[0]) == pl.read_parquet_schema(paths[1])
    assert pl.scan_parquet(tmp_path / "*.parquet").collect().height == 2


def test_export_errors_name_the_fix(run_folder, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    args = ["export", "--workdir", str(run_folder), "--out", str(busy)]
    assert main(args) == 2
    assert "not empty and holds no earlier export" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--workdir",
                str(run_folder),
                "--out",
                str(tmp_path / "x"),
                "--format",
                "csv",
            ]
        )
        == 2
    )
    assert "choose one of parquet, hf, chat" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--workdir",
                str(run_folder),
                "--stage",
                "train-1",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "stage 'train-1' has no run" in capsys.readouterr().err
