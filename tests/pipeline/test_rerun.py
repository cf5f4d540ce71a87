"""`heal-batch rerun`: a manifest's failed and missing tasks, with the config the refs point at."""

import json
import shutil

import pytest

from heal_batch import cli
from heal_batch.commands import args
from heal_batch.pipeline.registry import STAGES
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import load_manifest
from tests.fixtures.toy_stage import ToyPipeline, ToyStage, write_problems


@pytest.fixture
def toy_cli(monkeypatch, tmp_path):
    """The CLI on the ingest -> toy DAG; returns a function running ``heal-batch run``."""
    monkeypatch.setitem(STAGES, "toy", ToyStage)
    monkeypatch.setattr(args, "PipelineConfig", ToyPipeline)
    problems = write_problems(tmp_path / "p.jsonl", n=9)
    workdir = tmp_path / "run"

    def run(*extra):
        return cli.main(
            [
                "run",
                "--executor",
                "debug",
                "--workdir",
                str(workdir),
                "--ingest.paths",
                f"[{problems}]",
                "--ingest.num_shards",
                "3",
                "--stages",
                "ingest,toy",
                *extra,
            ]
        )

    run.layout = Layout(workdir)
    return run


def manifest_path(layout, stage):
    return layout.manifest(stage, layout.read_ref(stage))


def test_rerun_uses_the_config_the_refs_point_at(toy_cli, monkeypatch, capsys):
    layout = toy_cli.layout
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "ingest/1@before-run=raise")
    assert toy_cli() == 1
    old_toy = layout.read_ref("toy")
    assert toy_cli("--toy.multiplier", "2") == 1  # config changed; ingest/1 still fails
    new_toy = layout.read_ref("toy")
    assert new_toy != old_toy
    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    capsys.readouterr()

    assert cli.main(["rerun", str(manifest_path(layout, "ingest"))]) == 0
    assert layout.read_ref("toy") == new_toy  # not moved back to the old config's run
    assert load_manifest(layout.manifest("toy", new_toy)).sealed
    old = load_manifest(layout.manifest("toy", old_toy))
    assert old.tasks[1].state != "done"  # nothing ran with the old config
    assert "tasks 1, failed or missing" in capsys.readouterr().out


def test_rerun_reruns_a_task_whose_shard_is_gone_and_its_readers(toy_cli, capsys):
    layout = toy_cli.layout
    assert toy_cli() == 0
    ingest = load_manifest(manifest_path(layout, "ingest"))
    next(layout.store.glob(f"*/{ingest.tasks[1].output}.jsonl.zst")).unlink()
    capsys.readouterr()
    assert cli.main(["rerun", str(manifest_path(layout, "ingest"))]) == 0
    out = capsys.readouterr().out
    assert "tasks 1, failed or missing" in out and "toy             run" in out
    toy = load_manifest(manifest_path(layout, "toy"))
    assert toy.sealed and [t.attempt for t in toy.tasks] == [1, 2, 1]


def test_rerun_refuses_a_manifest_that_is_not_the_current_run(toy_cli, capsys):
    layout = toy_cli.layout
    assert toy_cli() == 0
    old = manifest_path(layout, "toy")
    assert toy_cli("--toy.multiplier", "2") == 0
    capsys.readouterr()
    assert cli.main(["rerun", str(old)]) == 2
    err = capsys.readouterr().err
    assert "not the current toy run" in err and "heal-batch run --config" in err


def test_rerun_refuses_a_manifest_with_an_unknown_stage(toy_cli, capsys):
    layout = toy_cli.layout
    assert toy_cli() == 0
    path = manifest_path(layout, "ingest")
    data = json.loads(path.read_text())
    data["stage"] = "nope"
    path.write_text(json.dumps(data))
    before = sorted(p for p in layout.workdir.rglob("*") if p.is_file())
    capsys.readouterr()
    assert cli.main(["rerun", str(path)]) == 2
    assert "stage 'nope' is not a stage" in capsys.readouterr().err
    assert sorted(p for p in layout.workdir.rglob("*") if p.is_file()) == before


def test_rerun_refuses_a_manifest_from_elsewhere(toy_cli, tmp_path, capsys):
    layout = toy_cli.layout
    assert toy_cli() == 0
    copy = tmp_path / "elsewhere" / "a" / "b" / "m.json"
    copy.parent.mkdir(parents=True)
    shutil.copy(manifest_path(layout, "ingest"), copy)
    capsys.readouterr()
    assert cli.main(["rerun", str(copy)]) == 2
    assert "is not at <workdir>/manifests/<stage>/<run_key>.json" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "elsewhere").rglob("*")] == ["a", "b", "m.json"]
