"""``heal-batch export``: a stage's current run as files the usual training tools read.

    heal-batch export --workdir runs/demo --stage curriculum --out exports/demo --format hf

The run is the one ``refs/<stage>`` points at; every task must be done (``heal-batch status``).

**curriculum** gives one split per training set. Split names are the set names with ``-`` turned
into ``_`` (``heal_1 heal_2 heal_3 rs flat``: Hugging Face split names allow no ``-``); the
``set`` column keeps the original. Columns:

    messages          list<struct<role, content>>: [system,] user, assistant (TRL's SFTTrainer,
                      LLaMA-Factory's openai/sharegpt "messages", axolotl's chat_template)
    id set kind bucket problem_id source_id      the curriculum's example record
    source_shard      address of the generate (natural) or score (candidate) shard it came from
    model seed        the teacher model and the seed of that sample
    breakpoint_token breakpoint_step   where GEAR cut the failed trajectory (repairs; else null)
    pure_ratio        PURE's R of a scored candidate (null for natural samples)

Formats: ``parquet`` writes ``<out>/<split>.parquet``; ``hf`` writes those and a ``DatasetDict``
(``save_to_disk``) in ``<out>/hf``; ``chat`` writes ``<out>/<split>.jsonl``, one row per line.

**generate, repair, score** (and any other stage) give ``<out>/<stage>-<i>-of-<n>.parquet``, one
file per task, one row per record; ``"f16:…"`` per-token strings become ``list<float32>``
columns (:mod:`heal_batch.export.tables`).

Every export also writes ``<out>/export.json``: workdir, stage, run key, manifest, and the rows of
each file. ``out`` must be empty or missing, or hold an earlier export (which is replaced).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import write_json_atomic
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import Manifest, load_manifest, refresh
from heal_batch.store.receipts import read_receipts
from heal_batch.store.shards import read_records, shard_path

FORMATS = ("parquet", "hf", "chat")
RECORD_NAME = "export.json"
_ADDRESS = re.compile(r"^[0-9a-f]{64}$")
LINEAGE = ("source_shard", "model", "seed", "breakpoint_token", "breakpoint_step", "pure_ratio")


class ExportError(ValueError):
    """The stage cannot be exported as asked (no run, unfinished tasks, bad format or folder)."""


def export_stage(workdir: Path, stage: str, out: Path, fmt: str = "parquet") -> dict[str, int]:
    """Export the stage's current run into ``out``; returns {file name: rows}."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    layout = Layout(Path(workdir))
    manifest = current_manifest(layout, stage)
    if stage != "curriculum" and fmt != "parquet":
        raise ExportError(
            f"--format {fmt}: only curriculum has chat rows; export {stage} with --format parquet"
        )
    _prepare(out)
    if stage == "curriculum":
        files = export_curriculum(layout, manifest, out, fmt)
    else:
        from heal_batch.export.tables import export_records

        files = export_records(layout, manifest, out)
    write_json_atomic(
        out / RECORD_NAME,
        {
            "workdir": str(layout.workdir.resolve()),
            "stage": stage,
            "run_key": manifest.run_key,
            "manifest": str(layout.manifest(stage, manifest.run_key)),
            "format": fmt,
            "files": files,
        },
    )
    return files


def current_manifest(layout: Layout, stage: str) -> Manifest:
    """The manifest ``refs/<stage>`` points at, refreshed from receipts; every task done."""
    key = layout.read_ref(stage)
    if key is None or not layout.manifest(stage, key).is_file():
        have = sorted(p.name for p in (layout.workdir / "refs").glob("*"))
        raise ExportError(
            f"{layout.workdir}: stage {stage!r} has no run (refs/{stage}); "
            f"stages with runs: {', '.join(have) or 'none'}"
        )
    manifest = load_manifest(layout.manifest(stage, key))
    refresh(layout, manifest)
    open_tasks = [t.index for t in manifest.tasks if t.state != "done"]
    if open_tasks:
        raise ExportError(
            f"{stage} run {key[:12]}: tasks {open_tasks[:20]} are not done; "
            f"finish them (`heal-batch status --workdir {layout.workdir}`) first"
        )
    return manifest


def export_curriculum(layout: Layout, manifest: Manifest, out: Path, fmt: str) -> dict[str, int]:
    """One split per set, chat messages plus lineage columns (module docstring)."""
    lineage = source_lineage(layout, manifest)
    splits: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest.tasks:
        for record in read_records(shard_path(layout.store, entry.output)):
            row = {**record, **lineage.get(record["source_id"], dict.fromkeys(LINEAGE))}
            splits.setdefault(split_name(record["set"]), []).append(row)
    if fmt == "chat":
        return {_write_jsonl(out / f"{n}.jsonl", rows): len(rows) for n, rows in splits.items()}
    tables = {name: _example_table(rows) for name, rows in splits.items()}
    files = {}
    for name, table in tables.items():
        table.write_parquet(out / f"{name}.parquet")
        files[f"{name}.parquet"] = table.height
    if fmt == "hf":
        _save_dataset_dict(out, list(tables))
    return files


def split_name(set_name: str) -> str:
    """A training set's split name: ``heal-1`` -> ``heal_1`` (HF split names allow no ``-``)."""
    return set_name.replace("-", "_")


def source_lineage(layout: Layout, manifest: Manifest) -> dict[str, dict[str, Any]]:
    """sample id -> lineage columns, from every generate and score shard the curriculum read."""
    addresses: list[str] = []
    for receipt in read_receipts(layout, manifest.stage, manifest.run_key).values():
        addresses += [a for a in receipt.inputs if _ADDRESS.match(a) and a not in addresses]
    lineage = {}
    for address in addresses:
        for record in read_records(shard_path(layout.store, address)):
            if record.get("kind") in (None, "repair", "answer_guided"):
                lineage[record["id"]] = _lineage(record, address)
    return lineage


def _lineage(record: dict[str, Any], address: str) -> dict[str, Any]:
    cut = record.get("breakpoint") or {}
    return {
        "source_shard": address,
        "model": record.get("model"),
        "seed": record.get("seed"),
        "breakpoint_token": cut.get("token_index"),
        "breakpoint_step": cut.get("step_index"),
        "pure_ratio": (record.get("pure") or {}).get("ratio"),
    }


def _example_table(rows: list[dict[str, Any]]):
    """The rows with one fixed schema, so every split (and every load of it) agrees on types."""
    import polars as pl

    text = pl.String
    schema = {
        "messages": pl.List(pl.Struct({"role": text, "content": text})),
        "id": text,
        "set": text,
        "kind": text,
        "bucket": text,
        "problem_id": text,
        "source_id": text,
        "source_shard": text,
        "model": text,
        "seed": pl.Int64,
        "breakpoint_token": pl.Int64,
        "breakpoint_step": pl.Int64,
        "pure_ratio": pl.Float64,
    }
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def _save_dataset_dict(out: Path, splits: list[str]) -> None:
    try:
        import datasets
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ExportError(
            f"--format hf needs the datasets package ({exc}): "
            "pip install datasets, or export --format parquet"
        ) from None
    parts = {name: datasets.Dataset(pq.read_table(out / f"{name}.parquet")) for name in splits}
    datasets.DatasetDict(parts).save_to_disk(str(out / "hf"))


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path.name


def _prepare(out: Path) -> None:
    """Make ``out`` ready: created if missing; an earlier export in it is removed."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    entries = list(out.iterdir())
    if not entries:
        return
    record = out / RECORD_NAME
    if not record.is_file():
        raise ExportError(
            f"--out {out}: folder is not empty and holds no earlier export "
            f"({RECORD_NAME}); choose an empty or new folder"
        )
    for name in [*json.loads(record.read_text())["files"], "hf", RECORD_NAME]:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
