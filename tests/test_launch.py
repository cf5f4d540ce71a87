"""The launcher on the debug and local executors: failures, reruns, skipping, run keys, DAGs."""

import dataclasses
import json

import pytest

from heal_batch.executors import make_executor
from heal_batch.pipeline import status
from heal_batch.pipeline.launch import PlanError, launch
from heal_batch.pipeline.registry import STAGES
from heal_batch.stages.ingest import IngestConfig
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import load_manifest
from tests.fixtures.toy_stage import ToyConfig, ToyPipeline, ToyStage, write_problems

DAG = ["ingest", "toy"]


@pytest.fixture
def toy_dag(monkeypatch):
    monkeypatch.setitem(STAGES, "toy", ToyStage)


def make_cfg(tmp_path, executor, shards=8, **toy):
    problems = write_problems(tmp_path / "problems.jsonl")
    return ToyPipeline(
        workdir=str(tmp_path / "run"),
        executor=executor,
        local_parallelism=2,
        ingest=IngestConfig(paths=[str(problems)], num_shards=shards),
        toy=ToyConfig(**toy),
    )


def run(cfg, stages=None, **kw):
    return launch(
        cfg,
        make_executor(cfg.executor, parallelism=cfg.local_parallelism),
        stages,
        echo=lambda *_: None,
        **kw,
    )


def ingest_row(cfg):
    return next(r for r in status.collect(Layout(cfg.workdir).workdir) if r.stage == "ingest")


@pytest.mark.parametrize(
    "executor,action", [("debug", "raise"), ("local", "raise"), ("local", "kill")]
)
def test_failed_shard_is_reported_then_rerun_alone(tmp_path, monkeypatch, executor, action):
    cfg = make_cfg(tmp_path, executor)
    point = "before-run" if action == "raise" else "mid-write"
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", f"ingest/3@{point}={action}")
    first = run(cfg, ["ingest"])
    assert first.submitted["ingest"] == list(range(8))
    assert first.failed["ingest"] == [3]

    row = ingest_row(cfg)
    assert row.counts["done"] == 7 and row.counts["failed"] == 1 and not row.sealed
    (failure,) = row.failures
    assert failure.index == 3
    assert (
        ("FailpointError" in failure.reason)
        if action == "raise"
        else ("died without a result" in failure.reason)
    )
    if executor == "local":
        assert failure.log_path and failure.log_path.endswith("_log.err")

    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    second = run(cfg, ["ingest"])
    assert second.submitted == {"ingest": [3]}
    manifest = load_manifest(Layout(cfg.workdir).manifest("ingest", first.plans[0].key))
    assert manifest.sealed and all(t.state == "done" for t in manifest.tasks)
    assert manifest.tasks[3].attempt == 2
    assert sum(t.records for t in manifest.tasks) == 40

    third = run(cfg, ["ingest"])
    assert third.submitted == {}


def test_downstream_config_change_reruns_only_downstream(tmp_path, toy_dag):
    cfg = make_cfg(tmp_path, "debug", shards=3)
    first = run(cfg, DAG)
    assert first.submitted == {"ingest": [0, 1, 2], "toy": [0, 1, 2]}
    changed = dataclasses.replace(cfg, toy=ToyConfig(multiplier=2))
    second = run(changed, DAG)
    assert second.submitted == {"toy": [0, 1, 2]}
    assert second.plans[0].key == first.plans[0].key and second.plans[1].key != first.plans[1].key
    assert run(changed, DAG).submitted == {}


def test_upstream_failure_holds_back_its_downstream_task(tmp_path, monkeypatch, toy_dag):
    cfg = make_cfg(tmp_path, "debug", shards=4)
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "ingest/2@before-run=raise")
    result = run(cfg, DAG)
    assert result.submitted == {"ingest": [0, 1, 2, 3], "toy": [0, 1, 3]}
    assert result.blocked == {"toy": [2]}
    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    assert run(cfg, DAG).submitted == {"ingest": [2], "toy": [2]}


def test_selecting_a_stage_whose_upstream_is_unfinished_is_an_error(tmp_path, toy_dag):
    cfg = make_cfg(tmp_path, "debug", shards=2)
    with pytest.raises(PlanError, match="ingest"):
        run(cfg, ["toy"])


def test_deleted_output_shard_is_detected_and_rebuilt(tmp_path):
    cfg = make_cfg(tmp_path, "debug", shards=2)
    first = run(cfg, ["ingest"])
    layout = Layout(cfg.workdir)
    manifest = load_manifest(layout.manifest("ingest", first.plans[0].key))
    victim = next(layout.store.glob(f"*/{manifest.tasks[1].output}.jsonl.zst"))
    victim.unlink()
    # sealed manifests are trusted only while their outputs exist
    assert run(cfg, ["ingest"]).submitted == {"ingest": [1]}
    assert victim.exists()


def test_dry_run_writes_nothing(tmp_path):
    cfg = make_cfg(tmp_path, "debug", shards=2)
    lines = []
    launch(cfg, make_executor("debug"), None, dry_run=True, echo=lines.append)
    assert any("would submit tasks 0-1" in line for line in lines)
    assert any(line.strip().startswith("task 1 <- ") for line in lines)
    assert any("<- @ingest/0" in line for line in lines)  # the DAG: inputs are upstream tasks
    assert not (tmp_path / "run").exists()


def test_status_json_lists_counts(tmp_path):
    cfg = make_cfg(tmp_path, "debug", shards=2)
    run(cfg, ["ingest"])
    rows = status.as_json(status.collect(Layout(cfg.workdir).workdir))
    assert json.loads(json.dumps(rows))[0]["counts"]["done"] == 2


def test_a_run_sweeps_temp_files_that_killed_writers_left(tmp_path):
    import os
    import time

    cfg = make_cfg(tmp_path, "debug", shards=2)
    run(cfg, ["ingest"])
    stale = Layout(cfg.workdir).store / ".tmp" / "killed.part"
    stale.write_bytes(b"x" * 2_000_000)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    lines = []
    launch(cfg, make_executor("debug"), ["ingest"], echo=lines.append)
    assert not stale.exists()
    assert "store: removed 1 stale temp file(s), 2.0 MB, of killed writers" in lines


def test_verify_reaches_sealed_stages_and_reruns_a_bad_shard_and_its_readers(tmp_path, toy_dag):
    from heal_batch.store.shards import shard_path, verify

    cfg = make_cfg(tmp_path, "debug", shards=3)
    first = run(cfg, DAG)
    layout = Layout(cfg.workdir)
    ingest = load_manifest(layout.manifest("ingest", first.plans[0].key))
    victim = shard_path(layout.store, ingest.tasks[1].output)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    assert run(cfg, DAG).submitted == {}  # without --verify a sealed stage is trusted
    lines = []
    result = launch(cfg, make_executor("debug"), DAG, verify=True, echo=lines.append)
    assert result.submitted == {"ingest": [1], "toy": [1]}
    assert any("task 1: output shard failed verification" in line for line in lines)
    assert verify(victim) == ingest.tasks[1].records  # the same records, whole again
    assert all(load_manifest(layout.manifest(p.name, p.key)).sealed for p in result.plans)


def test_a_sealed_manifest_is_not_rewritten_by_later_runs(tmp_path):
    cfg = make_cfg(tmp_path, "debug", shards=2)
    first = run(cfg, ["ingest"])
    path = Layout(cfg.workdir).manifest("ingest", first.plans[0].key)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert run(dataclasses.replace(cfg, executor="local"), ["ingest"]).submitted == {}
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_only_the_launcher_sweeps_temp_files(tmp_path):
    import os
    import time

    from heal_batch.cli import main

    cfg = make_cfg(tmp_path, "debug", shards=2)
    stale = Layout(cfg.workdir).store / ".tmp" / "killed.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    args = [
        "--workdir",
        cfg.workdir,
        "--ingest.paths",
        f"[{cfg.ingest.paths[0]}]",
        "--ingest.num_shards",
        "2",
    ]
    assert main(["stage", "ingest", *args, "--task", "0"]) == 0  # an array element: no sweep
    assert stale.exists()
    assert main(["run", "--executor", "debug", "--stages", "ingest", *args]) == 0
    assert not stale.exists()
