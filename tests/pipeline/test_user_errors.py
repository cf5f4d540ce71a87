"""Conditions a user can act on end in one clear error, not a traceback; status writes nothing."""

import errno
import json
import os

import pytest

from heal_batch.cli import main
from tests.fixtures.toy_stage import write_problems


@pytest.fixture
def run_args(tmp_path):
    problems = write_problems(tmp_path / "p.jsonl", n=6)
    return [
        "run",
        "--executor",
        "debug",
        "--workdir",
        str(tmp_path / "run"),
        "--stages",
        "ingest",
        "--ingest.paths",
        f"[{problems}]",
        "--ingest.num_shards",
        "2",
    ]


def files(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_no_temp_files(
    tmp_path, run_args, monkeypatch, capsys
):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(run_args) == 2
    err = capsys.readouterr().err
    assert "error: No space left on device writing " in err and "manifests/ingest/" in err
    assert "Traceback" not in err
    leftovers = [p for p in (tmp_path / "run").rglob("*") if p.suffix in (".tmp", ".part")]
    assert leftovers == []


def test_executor_slurm_without_slurm_fails_before_writing(tmp_path, run_args, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    args = [a if a != "debug" else "slurm" for a in run_args] + ["--cluster", "local"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--executor slurm: `sbatch` is not on PATH" in err and "nothing was written" in err
    assert not (tmp_path / "run").exists()


def test_a_model_folder_that_does_not_exist_is_named_by_its_config_key(tmp_path, capsys):
    problems = write_problems(tmp_path / "p.jsonl", n=6)
    args = [
        "run",
        "--executor",
        "debug",
        "--workdir",
        str(tmp_path / "run"),
        "--stages",
        "ingest,generate",
        "--ingest.paths",
        f"[{problems}]",
        "--teacher.model",
        str(tmp_path / "no-such-model"),
    ]
    assert main([*args, "--dry_run", "true"]) == 0
    assert "warning: teacher.model: model " in capsys.readouterr().out
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "teacher.model: model " in err and "no-such-model" in err
    assert not (tmp_path / "run" / "refs").exists()


def test_status_writes_nothing(tmp_path, run_args, monkeypatch, capsys):
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "ingest/1@before-run=raise")
    assert main(run_args) == 1
    workdir = tmp_path / "run"
    before = files(workdir)
    assert main(["status", "--workdir", str(workdir)]) == 0  # the old status rewrote the manifest
    assert files(workdir) == before
    receipt = next(workdir.glob("runs/ingest/*/tasks/0.json"))
    receipt.write_text(receipt.read_text()[:30])  # a damaged receipt is named, not repaired
    before = files(workdir)
    capsys.readouterr()
    assert main(["status", "--workdir", str(workdir)]) == 0
    table = capsys.readouterr().out
    assert main(["status", "--workdir", str(workdir), "--json", "true"]) == 0
    assert files(workdir) == before
    assert f"damaged receipt {receipt}" in table and json.loads(capsys.readouterr().out)
