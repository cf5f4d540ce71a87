"""Export of record shards (generate, repair, score, ...) as parquet, one file per task.

Every record is a row; nested objects (``pure``, ``breakpoint``) become struct columns, and every
``"f16:…"`` string (entropies, log-probs) is decoded with :func:`heal_batch.records.decode_floats`
into a ``list<float32>`` column. Kinds that lack a field (a repair summary has no ``text``) hold
null there. After all files are written their schemas are unified (a column that is null in one
file and typed in another gets the type everywhere), so one ``load_dataset("parquet", ...)`` or
``polars.scan_parquet`` over all files works.

    files = export_records(layout, manifest, Path("exports/generate"))
    # {"generate-00000-of-00002.parquet": 15, "generate-00001-of-00002.parquet": 15}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heal_batch.records import FLOAT_CODEC, decode_floats
from heal_batch.store.layout import Layout
from heal_batch.store.manifests import Manifest
from heal_batch.store.shards import read_records, shard_path

_PREFIX = FLOAT_CODEC + ":"


def export_records(layout: Layout, manifest: Manifest, out: Path) -> dict[str, int]:
    """Write each done task's output shard to ``<out>/<stage>-<i>-of-<n>.parquet``; returns
    {file name: rows}. A task that wrote no records gives no file."""
    files: dict[str, int] = {}
    total = len(manifest.tasks)
    for entry in manifest.tasks:
        frame = records_frame(read_records(shard_path(layout.store, entry.output)))
        if frame.height == 0:
            continue
        name = f"{manifest.stage}-{entry.index:05d}-of-{total:05d}.parquet"
        frame.write_parquet(out / name)
        files[name] = frame.height
    unify_schemas([out / name for name in files])
    return files


def records_frame(records):
    """A polars frame of the records, ``"f16:…"`` strings decoded to ``list<float32>``."""
    import polars as pl

    rows, encoded = [], set()
    for record in records:
        rows.append(_decoded(record, encoded))
    frame = pl.DataFrame(rows, infer_schema_length=None, strict=False)  # mixed kinds: supertypes
    return frame.with_columns(pl.col(c).cast(pl.List(pl.Float32)) for c in sorted(encoded))


def unify_schemas(paths: list[Path]) -> None:
    """Rewrite the files whose schema differs from the union of all (null -> typed columns,
    missing columns added as null, one column order)."""
    import polars as pl

    if len(paths) < 2:
        return
    schemas = [pl.read_parquet_schema(p) for p in paths]
    union = pl.concat([pl.DataFrame(schema=s) for s in schemas], how="diagonal_relaxed").schema
    for path, schema in zip(paths, schemas, strict=True):
        if schema != union:
            frame = pl.concat(
                [pl.DataFrame(schema=union), pl.read_parquet(path)], how="diagonal_relaxed"
            )
            frame.select(list(union)).write_parquet(path)


def _decoded(record: dict[str, Any], encoded: set[str]) -> dict[str, Any]:
    row = {}
    for key, value in record.items():
        if isinstance(value, str) and value.startswith(_PREFIX):
            row[key] = decode_floats(value)
            encoded.add(key)
        else:
            row[key] = value
    return row
