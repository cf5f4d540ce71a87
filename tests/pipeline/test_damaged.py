"""One damaged file does not stop the run folder: damaged receipts and unsealed manifests count
as missing (named by path); a damaged sealed manifest is an error saying which file to remove."""

import json

import pytest

from heal_batch.cli import main
from heal_batch.store.layout import Layout
from tests.fixtures.toy_stage import ingest_run_args, write_problems


@pytest.fixture
def ingest_cli(tmp_path, monkeypatch):
    """``heal-batch run`` of ingest (3 tasks) in tmp_path/run; task 2 fails the first time."""
    problems = write_problems(tmp_path / "p.jsonl", n=9)
    workdir = tmp_path / "run"
    args = ingest_run_args(workdir, problems, 3)
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "ingest/2@before-run=raise")
    assert main(args) == 1
    monkeypatch.delenv("HEAL_BATCH_FAILPOINTS")
    layout = Layout(workdir)
    key = layout.read_ref("ingest")
    return args, layout, key


def status_json(capsys, layout):
    capsys.readouterr()
    assert main(["status", "--workdir", str(layout.workdir), "--json", "true"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_truncated_receipt_is_named_and_its_task_reruns(ingest_cli, capsys):
    args, layout, key = ingest_cli
    receipt = layout.receipt("ingest", key, 0)
    receipt.write_text(receipt.read_text()[:40])
    (row,) = status_json(capsys, layout)
    assert row["counts"]["missing"] == 1 and row["counts"]["done"] == 1
    assert any(str(receipt) in f["reason"] for f in row["failures"] if f["index"] == 0)
    assert main(["report", "--workdir", str(layout.workdir)]) == 0
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "submitting tasks 0,2" in out and f"damaged receipt {receipt}" in out
    assert json.loads(receipt.read_text())["state"] == "done"


def test_an_unsealed_manifest_with_bad_fields_is_rebuilt_from_receipts(ingest_cli, capsys):
    args, layout, key = ingest_cli
    path = layout.manifest("ingest", key)
    data = json.loads(path.read_text())
    data["tasks"] = "oops"
    path.write_text(json.dumps(data))
    (row,) = status_json(capsys, layout)
    assert str(path) in row["problem"] and "tasks" in row["problem"]
    assert main(["report", "--workdir", str(layout.workdir)]) == 0
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{path}: damaged manifest" in out and "rebuilt from the receipts" in out
    assert "submitting tasks 2" in out and json.loads(path.read_text())["sealed"]


@pytest.mark.parametrize("damage", ["truncate", "tasks"])
def test_a_damaged_sealed_manifest_says_which_file_to_remove(ingest_cli, capsys, damage):
    args, layout, key = ingest_cli
    assert main(args) == 0  # sealed now
    path = layout.manifest("ingest", key)
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    else:
        path.write_text(text.replace('"tasks": [', '"tasks": [7, ', 1))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"rm {path}" in err and "Traceback" not in err
    (row,) = status_json(capsys, layout)
    assert f"rm {path}" in row["problem"]
    path.unlink()
    assert main(args) == 0  # rebuilt from the receipts, nothing rerun
    assert "nothing to do" in capsys.readouterr().out and json.loads(path.read_text())["sealed"]


def test_an_unsealed_manifest_with_too_few_tasks_is_rebuilt(ingest_cli, capsys):
    args, layout, key = ingest_cli
    path = layout.manifest("ingest", key)
    data = json.loads(path.read_text())
    data["tasks"] = data["tasks"][:1]
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(args) == 0
    assert "it lists 1 tasks, the stage plans 3" in capsys.readouterr().out
