"""Names read from a run folder are checked before they become paths (refs, manifests, receipts)."""

import json

import pytest

from heal_batch.pipeline import status
from heal_batch.store.layout import Layout
from heal_batch.store.manifest_checks import ManifestError
from heal_batch.store.manifests import load_manifest, refresh
from heal_batch.store.names import RunFolderError
from heal_batch.store.shards import shard_path
from tests.test_launch import make_cfg, run

KEY = "a" * 64
OUTSIDE = "../../../../outside/x"


@pytest.mark.parametrize(
    "call",
    [
        lambda lay: lay.manifest("ingest", OUTSIDE),
        lambda lay: lay.manifest("../ingest", KEY),
        lambda lay: lay.run_dir("ingest", KEY.upper()),
        lambda lay: lay.receipt("ingest", KEY, -1),
        lambda lay: lay.scratch("ingest", KEY, "../3"),
        lambda lay: lay.ref("../nope"),
        lambda lay: lay.checkpoints(KEY, "../x"),
        lambda lay: shard_path(lay.store, "../" + KEY[3:]),
    ],
)
def test_layout_refuses_names_that_are_not_names(tmp_path, call):
    with pytest.raises(RunFolderError):
        call(Layout(tmp_path))


def ingest_run(tmp_path):
    cfg = make_cfg(tmp_path, "debug", shards=2)
    result = run(cfg, ["ingest"])
    return cfg, Layout(cfg.workdir), result.plans[0].key


def test_a_ref_pointing_outside_is_refused_naming_the_ref(tmp_path):
    cfg, layout, key = ingest_run(tmp_path)
    layout.ref("ingest").write_text(OUTSIDE)
    (row,) = status.collect(layout.workdir)
    assert row.problem and str(layout.ref("ingest")) in row.problem and "outside" in row.problem
    assert run(cfg, ["ingest"]).submitted == {}  # the launcher rewrites the ref
    assert layout.read_ref("ingest") == key


def test_a_receipt_whose_output_leaves_the_store_is_damaged_and_its_task_reruns(tmp_path):
    cfg, layout, key = ingest_run(tmp_path)
    receipt = layout.receipt("ingest", key, 0)
    data = json.loads(receipt.read_text())
    good = data["output"]
    data["output"] = "../" + good[3:]
    receipt.write_text(json.dumps(data))
    manifest = load_manifest(layout.manifest("ingest", key))
    manifest.sealed = False
    refresh(layout, manifest)
    assert manifest.tasks[0].state == "missing" and str(receipt) in manifest.tasks[0].error
    layout.manifest("ingest", key).unlink()  # forget the sealed manifest: plan from the receipts
    assert run(cfg, ["ingest"]).submitted == {"ingest": [0]}
    assert json.loads(receipt.read_text())["output"] == good


@pytest.mark.parametrize(
    "field,value",
    [
        ("stage", "../../x"),
        ("run_key", OUTSIDE),
        ("upstream", {"ingest": OUTSIDE}),
        ("tasks", "oops"),
    ],
)
def test_a_manifest_with_bad_names_is_refused_naming_the_file(tmp_path, field, value):
    cfg, layout, key = ingest_run(tmp_path)
    path = layout.manifest("ingest", key)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=str(path)) as caught:
        load_manifest(path)
    assert caught.value.sealed is True and f"rm {path}" in str(caught.value)
    assert not (tmp_path / "x").exists() and not (tmp_path / "outside").exists()
