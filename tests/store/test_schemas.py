"""Real receipts, manifests and records validate against the JSON Schemas in manifests/."""

import json
from pathlib import Path

import jsonschema
import pytest

from heal_batch.executors import make_executor
from heal_batch.pipeline.launch import launch
from heal_batch.stages.ingest import IngestConfig
from heal_batch.store.layout import Layout
from heal_batch.store.shards import read_records
from tests.fixtures.toy_stage import ToyPipeline, write_problems

SCHEMAS = Path(__file__).resolve().parents[2] / "manifests"


def schema(name):
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


@pytest.fixture(scope="module")
def run_folder(
    tmp_path_factory,
):
    tmp = tmp_path_factory.mktemp("schemas")
    import os

    os.environ["HEAL_BATCH_FAILPOINTS"] = "ingest/1@before-run=raise"
    try:
        cfg = ToyPipeline(
            workdir=str(tmp / "run"),
            executor="debug",
            ingest=IngestConfig(paths=[str(write_problems(tmp / "p.jsonl"))], num_shards=3),
        )
        launch(cfg, make_executor("debug"), ["ingest"], echo=lambda *_: None)
    finally:
        del os.environ["HEAL_BATCH_FAILPOINTS"]
    launch(cfg, make_executor("debug"), ["ingest"], echo=lambda *_: None)
    return Layout(cfg.workdir)


def test_every_schema_is_a_valid_schema():
    for path in SCHEMAS.glob("*.schema.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_receipts_validate(run_folder):
    receipts = list(run_folder.workdir.glob("runs/*/*/tasks/*.json"))
    assert len(receipts) == 3
    for path in receipts:
        data = json.loads(path.read_text())
        jsonschema.validate(data, schema("receipt"))
    assert (
        json.loads((run_folder.workdir / "runs").glob("*/*/tasks/1.json").__next__().read_text())[
            "attempt"
        ]
        == 2
    )


def test_failed_receipt_validates(tmp_path):
    from heal_batch.store.receipts import Receipt

    receipt = Receipt(
        stage="ingest", run_key="a" * 64, index=0, state="failed", error="ValueError: x"
    )
    jsonschema.validate(receipt.to_dict(), schema("receipt"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**receipt.to_dict(), "error": None}, schema("receipt"))


def test_sealed_manifest_validates_and_records_provenance(run_folder):
    (path,) = run_folder.workdir.glob("manifests/ingest/*.json")
    data = json.loads(path.read_text())
    jsonschema.validate(data, schema("manifest"))
    assert data["sealed"] and data["counters"]["kept"] == 40
    assert {"zstandard", "submitit"} <= set(data["library_versions"])
    assert data["config"] == {
        "config": {"paths": data["pipeline"]["ingest"]["paths"], "num_shards": 3}
    }


def test_problem_records_validate(run_folder):
    for shard in run_folder.store.glob("*/*.jsonl.zst"):
        for record in read_records(shard):
            jsonschema.validate(record, schema("problem"))
