"""The whole pipeline DAG on the real local Slurm cluster, driven through the CLI as a user would.

ingest -> generate -> repair -> score -> curriculum -> train-1..3 + train-baselines -> evaluate,
with a tiny teacher that answers some problems (tests/fixtures/parrot_model.py), the tiny random
student, 4 problems in 2 shards, k=2, one optimizer step per training stage, and lm-eval on 2 GSM8K
problems. ``heal-batch run --config cfg.yaml`` submits every stage as Slurm jobs with dependencies
and returns; ``heal-batch status --json`` follows it. A failpoint makes repair shard 1 fail: status
shows it and its downstream tasks failed; a second ``heal-batch run`` reruns exactly that shard and
what depends on it, and everything ends sealed with evaluate's results on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from heal_batch.cli import main
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import load_manifest
from heal_batch.store.receipts import read_receipts
from heal_batch.store.shards import read_records, shard_path

pytestmark = pytest.mark.slurm

# DeepSpeed JIT-builds its shm comm op once (~40 s); share the cache with tests/training. The Slurm
# jobs inherit this process's environment.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "heal_batch" / "torch_extensions")
)
ALL_STAGES = [
    "ingest",
    "generate",
    "repair",
    "score",
    "curriculum",
    "train-1",
    "train-2",
    "train-3",
    "train-baselines",
    "evaluate",
]
FAILPOINT = "repair/1@before-run=raise"
# Two problems per ingest shard (sha256 split); with generate's seeds the parrot answers p0 and p1
# once in 2 samples (easy: natural samples for heal-1) and p5 and p11 never (corner: repaired).
PROBLEMS = [
    ("p0", "What is 40 + 2?"),
    ("p1", "What is 39 + 3?"),
    ("p5", "What is 35 + 7?"),
    ("p11", "What is 29 + 13?"),
]


@pytest.fixture(scope="module")
def parrot(tmp_path_factory) -> Path:
    from tests.fixtures.parrot_model import build_parrot_model

    return build_parrot_model(tmp_path_factory.mktemp("models") / "parrot")


def write_config(tmp_path: Path, teacher: Path, student: Path, data: Path) -> Path:
    """The pipeline YAML: every stage as small as it goes while still producing data."""
    problems = tmp_path / "problems.jsonl"
    problems.write_text(
        "".join(json.dumps({"id": i, "problem": p, "answer": "42"}) + "\n" for i, p in PROBLEMS)
    )
    config = {
        "workdir": str(tmp_path / "run"),
        "executor": "slurm",
        "cluster": "local",
        "teacher": {
            "model": str(teacher),
            "system_prompt": None,
            "examples": [],
            "dtype": "float32",
        },
        "ingest": {"paths": [str(problems)], "num_shards": 2},
        "generate": {"k": 2, "max_new_tokens": 12},
        # strategy start: the parrot's one-line answers have no entropy surge to cut at
        "repair": {
            "paths_per_problem": 1,
            "continuations_per_path": 2,
            "guided_per_problem": 0,
            "max_new_tokens": 12,
            "gear": {"strategy": "start"},
        },
        "score": {"reference_samples": 2},
        # the parrot's repairs have no reasoning for PURE to judge: keep them unfiltered
        "pure": {"kinds": []},
        "curriculum": {"baselines": ["rs"], "benchmarks": ["gsm8k"], "data_dir": str(data)},
        "student": {"model": str(student)},
        "train": {
            "max_steps": 1,
            "lr": 3e-3,
            "per_device_batch": 2,
            "max_seq_len": 96,
            "warmup_ratio": 0.0,
            "save_every_steps": 0,
            "dtype": "fp32",
        },
        "evaluate": {
            "benchmarks": ["gsm8k"],
            "data_dir": str(data),
            "limit": 2,
            "n_samples": 0,
            "max_gen_toks": 8,
        },
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli(capsys, *argv: str) -> tuple[int, str]:
    """(exit code, stdout) of ``heal-batch ARGV`` run in this process."""
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def status(capsys, workdir: Path) -> dict[str, dict]:
    """``heal-batch status --json``, by stage."""
    code, out = cli(capsys, "status", "--workdir", str(workdir), "--json", "true")
    assert code == 0, out
    return {row["stage"]: row for row in json.loads(out)}


def follow(capsys, workdir: Path, done, timeout: float) -> dict[str, dict]:
    """Poll status until ``done(rows)``; on time-out fail with the status table."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = status(capsys, workdir)
        if len(rows) == len(ALL_STAGES) and done(rows):
            return rows
        time.sleep(3)
    pytest.fail(
        f"pipeline did not get there in {timeout}s:\n"
        f"{cli(capsys, 'status', '--workdir', str(workdir))[1]}"
    )


def ended(rows) -> bool:
    return all(r["counts"]["running"] == 0 and r["counts"]["pending"] == 0 for r in rows.values())


def attempts(rows: dict[str, dict]) -> dict[str, list[int]]:
    """Per stage, each task's attempt number (1 = ran once) from its receipts (``status`` reads
    them without writing, so the manifest on disk is only brought up to date by the next run)."""
    out = {}
    for name, r in rows.items():
        manifest = Path(r["manifest"])
        layout = Layout(manifest.parents[2])
        receipts = read_receipts(layout, name, manifest.stem)
        out[name] = [receipts[i].attempt for i in sorted(receipts)]
    return out


@pytest.fixture
def cancel_leftovers(tmp_path):
    """After the test, cancel whatever Slurm jobs of this run folder are still queued (a failed
    test must not leave the shared cluster busy for the next ones)."""
    yield
    jobs = set()
    for path in (tmp_path / "run" / "manifests").glob("*/*.json"):
        jobs |= {t.job_id.split("_")[0] for t in load_manifest(path).tasks if t.job_id}
    if jobs:
        subprocess.run(["scancel", *sorted(jobs)], check=False, capture_output=True)


def test_whole_pipeline_on_slurm_with_a_failed_shard_and_rerun(
    slurm_cluster, tmp_path, tiny_llama, parrot, shared_data, capsys, monkeypatch, cancel_leftovers
):
    config = write_config(tmp_path, parrot, tiny_llama, shared_data)
    workdir = tmp_path / "run"
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", FAILPOINT)  # sbatch passes it on to the jobs

    code, out = cli(capsys, "run", "--config", str(config))
    assert code == 0 and "heal-batch status --workdir" in out, out
    queued = status(capsys, workdir)  # run returned with the DAG submitted, not finished
    assert sorted(queued) == sorted(ALL_STAGES), out
    assert queued["evaluate"]["counts"]["pending"] + queued["evaluate"]["counts"]["running"] == 5
    rows = follow(capsys, workdir, ended, timeout=600)

    counts = {name: r["counts"] for name, r in rows.items()}
    assert counts["ingest"]["done"] == 2 and counts["generate"]["done"] == 2, counts
    assert (counts["repair"]["done"], counts["repair"]["failed"]) == (1, 1), counts
    (failure,) = rows["repair"]["failures"]
    assert failure["index"] == 1 and "FailpointError" in failure["reason"], failure
    assert failure["log_path"] and Path(failure["log_path"]).is_file()
    assert [f["index"] for f in rows["score"]["failures"]] == [1]
    assert "repair/1" in rows["score"]["failures"][0]["reason"]  # names the missing input
    for name in ["curriculum", "train-1", "train-2", "train-3", "train-baselines"]:
        assert counts[name]["done"] == 0 and counts[name]["failed"] >= 1, (name, counts[name])
    assert counts["evaluate"]["done"] == 1  # the base student needs no training
    assert not any(rows[name]["sealed"] for name in ALL_STAGES[2:])
    table = cli(capsys, "status", "--workdir", str(workdir))[1]
    assert "repair task 1: FailpointError" in table and "rerun with: heal-batch rerun" in table

    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    code, out = cli(capsys, "run", "--config", str(config))
    assert code == 0, out
    rows = follow(capsys, workdir, lambda rows: all(r["sealed"] for r in rows.values()), 600)

    # only the failed shard and what reads it ran again (the base student's evaluation did not)
    assert attempts(rows) == {
        "ingest": [1, 1],
        "generate": [1, 1],
        "repair": [1, 2],
        "score": [1, 2],
        "curriculum": [2, 2, 2, 2],
        "train-1": [2],
        "train-2": [2],
        "train-3": [2],
        "train-baselines": [2],
        "evaluate": [1, 2, 2, 2, 2],
    }
    layout = Layout(workdir)
    evaluate = read_receipts(layout, "evaluate", Path(rows["evaluate"]["manifest"]).stem)
    results = [
        next(read_records(shard_path(layout.store, evaluate[i].output))) for i in sorted(evaluate)
    ]
    assert [r["checkpoint"] for r in results] == ["base", "heal-1", "heal-2", "heal-3", "rs"]
    for result in results:
        assert result["benchmark"] == "gsm8k" and result["num_problems"] == 2
        assert Path(result["results_file"]).is_file() and Path(result["path"]).is_dir()

    code, out = cli(capsys, "run", "--config", str(config))
    assert code == 0 and "nothing to do" in out, out
