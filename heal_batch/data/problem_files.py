"""Reading and validating problem files (JSONL, parquet, or the built-in generator).

Every problem becomes ``{"id", "problem", "answer", "solution"?, "source", "meta"}``. Bad input
raises :class:`ProblemFileError` naming the file and line and saying what was expected: besides
missing or mistyped fields, any value that cannot be stored as canonical JSON (NaN or an infinite
number such as ``1e999``, a lone surrogate such as ``"\ud800"``) and nesting deeper than
:data:`MAX_DEPTH` levels.

    for where, record in iter_problems(["data/train.jsonl", "builtin:arith?count=48&seed=0"]): ...
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

BUILTIN = "builtin:"
REQUIRED = {"id": str, "problem": str, "answer": (str, int, float)}
OPTIONAL = {"solution": (str, type(None)), "source": (str, type(None)), "meta": (dict, type(None))}
MAX_DEPTH = 64  # nesting levels of objects and lists in one problem record


class ProblemFileError(ValueError):
    """A problem file is malformed; the message names file and line."""


def fingerprint(spec: str) -> str:
    """sha256 of a problem file's bytes (or of the built-in spec itself)."""
    if spec.startswith(BUILTIN):
        return hashlib.sha256(spec.encode()).hexdigest()
    path = Path(spec)
    if path.is_dir():
        raise ProblemFileError(
            f"{spec}: is a directory, not a problem file (from ingest.paths); "
            "list the JSONL or parquet files inside it"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such problem file (from ingest.paths)")
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def iter_problems(specs: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", normalised record)`` for every problem of every spec, in order."""
    for spec in specs:
        if spec.startswith(BUILTIN):
            yield from _builtin(spec)
        elif spec.endswith(".parquet"):
            yield from _parquet(Path(spec))
        else:
            yield from _jsonl(Path(spec))


def normalise(raw: Any, where: str, default_source: str) -> dict[str, Any]:
    """Check types and fold unknown fields into ``meta``."""
    if not isinstance(raw, dict):
        raise ProblemFileError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    _check_values(raw, where)
    for key, kind in REQUIRED.items():
        if key not in raw:
            raise ProblemFileError(
                f"{where}: missing field {key!r} (required: id, problem, answer)"
            )
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise ProblemFileError(
                f"{where}: field {key!r} must be {_names(kind)}, got {type(raw[key]).__name__}"
            )
    for key, kind in OPTIONAL.items():
        if key in raw and not isinstance(raw[key], kind):
            raise ProblemFileError(
                f"{where}: field {key!r} must be {_names(kind)}, got {type(raw[key]).__name__}"
            )
    if not raw["problem"].strip() or not str(raw["answer"]).strip() or not raw["id"].strip():
        raise ProblemFileError(f"{where}: 'id', 'problem' and 'answer' must not be empty")
    meta = dict(raw.get("meta") or {})
    meta.update({k: v for k, v in raw.items() if k not in REQUIRED and k not in OPTIONAL})
    record = {
        "id": raw["id"],
        "problem": raw["problem"],
        "answer": str(raw["answer"]),
        "source": raw.get("source") or default_source,
        "meta": meta,
    }
    if raw.get("solution") is not None:
        record["solution"] = raw["solution"]
    return record


def _check_values(value: Any, where: str, field: str = "", depth: int = 0) -> None:
    """Refuse what canonical JSON cannot store: NaN/inf, lone surrogates, too deep nesting."""
    if depth > MAX_DEPTH:
        raise ProblemFileError(f"{where}: nested deeper than {MAX_DEPTH} levels (at {field!r})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProblemFileError(
            f"{where}: field {field!r} is {value} (NaN or a number too large "
            "for a float, e.g. 1e999); write it as a string or a finite number"
        )
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ProblemFileError(
                f"{where}: field {field!r} holds a lone surrogate "
                f"{value[exc.start]!r} (not valid Unicode; an unpaired "
                "\\ud800-\\udfff escape?)"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, where, f"{field}.{key}".lstrip("."), depth + 1)
            _check_values(item, where, f"{field}.{key}".lstrip("."), depth + 1)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            _check_values(item, where, f"{field}[{number}]", depth + 1)


def _names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "dict": "an object",
            "NoneType": "null",
        }[k.__name__]
        for k in kinds
    )


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    _check_is_file(path)
    count = 0
    with path.open("rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProblemFileError(
                    f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProblemFileError(
                    f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); "
                    "expected one JSON object per line"
                ) from None
            except RecursionError:
                raise ProblemFileError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
            count += 1
            yield where, normalise(raw, where, path.stem)
    if count == 0:
        raise ProblemFileError(f"{path}: empty file; expected JSON Lines with id, problem, answer")


def _parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import polars as pl

    _check_is_file(path)
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
        raise ProblemFileError(f"{path}: not a readable parquet file ({exc})") from None
    if frame.height == 0:
        raise ProblemFileError(f"{path}: empty file; expected rows with id, problem, answer")
    for row_number, row in enumerate(frame.iter_rows(named=True), start=1):
        where = f"{path}:row {row_number}"
        yield where, normalise({k: v for k, v in row.items() if v is not None}, where, path.stem)


def _check_is_file(path: Path) -> None:
    if path.is_dir():
        raise ProblemFileError(
            f"{path}: is a directory, not a problem file; list the JSONL or "
            "parquet files inside it in ingest.paths"
        )
    if not path.is_file():
        raise ProblemFileError(f"{path}: no such problem file")


def _builtin_param(key: str, value: str) -> tuple[str, Any]:
    """``count``/``seed`` are ints; ``mix=1:1,2:2`` is {level: weight}; ``levels=1,2`` a list."""
    if key == "mix":
        pairs = (item.split(":") for item in value.split(","))
        return key, {int(level): float(weight) for level, weight in pairs}
    if key == "levels":
        return key, [int(level) for level in value.split(",")]
    return key, int(value)


def _builtin(spec: str) -> Iterator[tuple[str, dict[str, Any]]]:
    from heal_batch.data import builtin as problems

    name, _, query = spec[len(BUILTIN) :].partition("?")
    if name != "arith":
        raise ProblemFileError(f"{spec}: unknown built-in problem set {name!r}; expected 'arith'")
    try:
        params = dict(_builtin_param(k, v) for k, v in parse_qsl(query))
        records = problems.generate_problems(**params)
    except (TypeError, ValueError) as exc:
        raise ProblemFileError(
            f"{spec}: bad parameters ({exc}); e.g. builtin:arith?count=48&seed=0&mix=1:1,2:2,3:1"
        ) from None
    for number, raw in enumerate(records, start=1):
        yield f"{spec}#{number}", normalise(raw, f"{spec}#{number}", "builtin")
