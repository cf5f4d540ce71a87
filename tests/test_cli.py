"""The heal-batch command line: help, run, status, stage, rerun, inspect, configs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from heal_batch.cli import main
from heal_batch.commands.args import pipeline_from
from heal_batch.commands.args import pipeline_parser as _pipeline_parser
from tests.fixtures.toy_stage import write_problems

REPO = Path(__file__).resolve().parents[1]


def test_help_and_status_do_not_import_heavy_libraries(tmp_path):
    code = (
        "import sys; from heal_batch.cli import main\n"
        "try: main(['--help'])\nexcept SystemExit: pass\n"
        f"main(['status', '--workdir', {str(tmp_path)!r}])\n"
        "heavy = {'torch', 'vllm', 'deepspeed', 'transformers', 'lm_eval', 'polars'}"
        " & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize("path", sorted(REPO.glob("jobs/**/*.yaml")), ids=lambda p: p.name)
def test_every_job_yaml_parses_and_validates(path):
    parser = _pipeline_parser()
    cfg = pipeline_from(parser.parse_args(["--config", str(path)]), parser)
    assert cfg.executor in ("debug", "local", "slurm")
    assert yaml.safe_load(path.read_text())  # not empty
    assert path.read_text().startswith("#"), "every job YAML opens with a comment saying what it is"


@pytest.mark.parametrize("path", sorted(REPO.glob("jobs/**/*.yaml")), ids=lambda p: p.name)
def test_every_job_yaml_dry_run_in_its_header_previews_the_whole_dag(
    path, tmp_path, monkeypatch, capsys
):
    """The header's --dry_run command works before the data is downloaded (a missing problem file
    is a warning in a preview) and prints every stage, with #SBATCH lines on a cluster profile."""
    line = next(ln for ln in path.read_text().splitlines() if "--dry_run true" in ln)
    args = line.split("heal-batch", 1)[1].split("#")[0].split()
    monkeypatch.chdir(REPO)
    main(args + ["--workdir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    stages = ["ingest", "generate", "repair", "score", "curriculum", "train-1", "evaluate"]
    assert all(f"\n{name} " in "\n" + out for name in stages), out
    assert ("#SBATCH --partition" in out) == ("--executor slurm" in line)
    assert not (tmp_path / "run").exists()  # a preview writes nothing


def test_dry_run_names_a_missing_problem_file_and_a_real_run_stops(tmp_path, capsys):
    args = ["--workdir", str(tmp_path / "run"), "--ingest.paths", '["nope/problems.jsonl"]']
    main(["run", *args, "--dry_run", "true"])
    out = capsys.readouterr().out
    assert "ingest          warning: nope/problems.jsonl: no such problem file" in out
    assert "generate        run " in out and "evaluate        run " in out
    assert main(["run", *args, "--executor", "debug"]) == 2
    assert "nope/problems.jsonl: no such problem file" in capsys.readouterr().err


def test_unknown_config_key_is_rejected(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  num_shardz: 3\n")
    with pytest.raises(SystemExit):
        main(["run", "--config", str(bad), "--dry-run", "true"])
    assert "num_shardz" in capsys.readouterr().err


def test_run_status_rerun_inspect_round_trip(tmp_path, monkeypatch, capsys):
    problems = write_problems(tmp_path / "p.jsonl", n=12)
    args = [
        "--executor",
        "debug",
        "--workdir",
        str(tmp_path / "run"),
        "--ingest.paths",
        f"[{problems}]",
        "--ingest.num_shards",
        "4",
    ]
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "ingest/2@after-shard=raise")
    assert main(["run", *args, "--stages", "ingest"]) == 1
    capsys.readouterr()
    assert main(["status", "--workdir", str(tmp_path / "run"), "--json", "true"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["counts"]["done"] == 3 and row["counts"]["failed"] == 1
    assert "failpoint ingest/2@after-shard" in row["failures"][0]["reason"]

    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    assert main(["rerun", row["manifest"]]) == 0
    out = capsys.readouterr().out
    assert "tasks 2, failed or missing" in out and "submitting tasks 2" in out
    manifest = json.loads(Path(row["manifest"]).read_text())
    assert manifest["sealed"]

    assert (
        main(
            [
                "inspect",
                manifest["tasks"][0]["output"],
                "--workdir",
                str(tmp_path / "run"),
                "--head",
                "1",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[0])["id"].startswith("q")
    assert "sha256 verified" in captured.err


def test_stage_command_runs_chosen_shards(tmp_path, capsys):
    problems = write_problems(tmp_path / "p.jsonl", n=12)
    args = [
        "--executor",
        "debug",
        "--workdir",
        str(tmp_path / "run"),
        "--ingest.paths",
        f"[{problems}]",
        "--ingest.num_shards",
        "4",
    ]
    assert main(["stage", "ingest", *args, "--shards", "1,3"]) == 0
    assert "submitting tasks 1,3" in capsys.readouterr().out
    assert main(["stage", "ingest", *args, "--task", "0"]) == 0
    assert "submitting tasks 0" in capsys.readouterr().out


def test_inspect_reports_a_corrupt_shard(tmp_path, capsys):
    from heal_batch.store.shards import shard_path, write_records

    path = shard_path(tmp_path, write_records(tmp_path, [{"a": 1}] * 100))
    path.write_bytes(path.read_bytes()[:-5])
    assert main(["inspect", str(path)]) == 2
    assert path.name in capsys.readouterr().err


def test_inspect_plots_a_trajectory_entropy(tmp_path, capsys):
    from heal_batch.records import encode_floats
    from heal_batch.store.shards import write_records

    completion = "\n\n".join(f"step {i} " + "x" * 20 for i in range(6))
    offsets = list(range(len(completion)))  # one token per character
    entropies = [0.2] * len(completion)
    for i in range(40, 60):
        entropies[i] = 3.0
    record = {
        "id": "p#s0",
        "completion": completion,
        "offsets": offsets,
        "entropies": encode_floats(entropies),
        "entropy_method": "exact",
        "n_tokens": len(offsets),
    }
    address = write_records(tmp_path / "store", [record])
    out = tmp_path / "e.png"
    assert (
        main(
            [
                "inspect",
                address,
                "--workdir",
                str(tmp_path),
                "--head",
                "0",
                "--plot",
                "p#s0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["inspect", address, "--workdir", str(tmp_path), "--plot", "nope"]) == 2


def test_run_ends_with_each_failed_task_reason_and_log(tmp_path, monkeypatch, capsys):
    problems = write_problems(tmp_path / "p.jsonl", n=6)
    args = [
        "run",
        "--executor",
        "local",
        "--workdir",
        str(tmp_path / "run"),
        "--stages",
        "ingest",
        "--ingest.paths",
        f"[{problems}]",
        "--ingest.num_shards",
        "2",
    ]
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "ingest/1@before-run=raise")
    assert main(args) == 1
    tail = capsys.readouterr().out.split("some tasks failed:")[1].splitlines()
    assert tail[1].strip() == "ingest task 1: FailpointError: failpoint ingest/1@before-run"
    log = tail[2].strip().removeprefix("log: ")
    assert log.endswith("_log.err") and "FailpointError" in Path(log).read_text()
