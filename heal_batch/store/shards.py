"""Content-addressed shards: zstd-compressed canonical JSON Lines named by their sha256.

A shard's address is the sha256 of its *uncompressed* bytes, so the same records give the same
address on any machine and any zstd version. Records are serialised canonically: sorted keys, no
spaces, UTF-8, one record per line.

    with ShardWriter(store_dir) as w:
        w.write({"id": "p1", "problem": "1+1?"})
    address = w.address                     # "3f1a…" (64 hex chars)
    for rec in read_records(shard_path(store_dir, address)): ...

Writes stream to a temp file in ``<store>/.tmp``, are fsynced, then renamed into
``<store>/<aa>/<address>.jsonl.zst``: a crash before the rename leaves no visible shard.
Reads verify the hash while streaming and raise :class:`ShardError` naming the file.

Serialisation is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)`` plus a newline, byte for byte. orjson (a declared dependency) writes and parses
most records several times faster; every record it cannot write identically goes through the json
module instead (tests/store/test_canonical.py holds the two to the same bytes).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

try:
    import orjson
except ImportError:  # optional speed-up only; the json module gives the same bytes
    orjson = None

from heal_batch.store.atomic import honour_umask
from heal_batch.store.names import RunFolderError, check_address

SUFFIX = ".jsonl.zst"
ZSTD_LEVEL = 3
_READ_CHUNK = 1 << 20


class ShardError(Exception):
    """A shard is missing, truncated, corrupt or does not match its address."""


def canonical_line(record: dict[str, Any]) -> bytes:
    """The canonical serialisation of one record, newline included (see the module docstring)."""
    if orjson is not None:
        try:
            line = orjson.dumps(record, default=_refuse, option=_ORJSON_OPTIONS)
        except TypeError:  # ints beyond 64 bits, lone surrogates, non-str keys, other types
            line = None
        same = line is not None and not _maybe_exponent(line)
        if same and (b"null" not in line or not _has_non_finite(record)):  # NaN becomes null
            return line
    return json_line(record)


def json_line(record: dict[str, Any]) -> bytes:
    """The canonical line by the json module alone: the definition orjson's output must match."""
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return (text + "\n").encode("utf-8")


def parse_line(line: bytes) -> Any:
    """One JSON line as the json module parses it (orjson first; json for what orjson refuses or
    reads otherwise: escaped lone surrogates, ints past 64 bits (orjson makes them floats), and
    for the error message)."""
    if orjson is not None and not _maybe_long_int(line):
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    return json.loads(line)


if orjson is not None:
    _ORJSON_OPTIONS = (
        orjson.OPT_SORT_KEYS
        | orjson.OPT_APPEND_NEWLINE
        | orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
    )
# A float json writes with an exponent: orjson writes 1e16 (json: 1e+16) and 1e-05 as 0.00001.
# Matches inside strings only cost a json fallback.
_ORJSON_DIFFERS = re.compile(rb"[:,\[]-?(?:\d+(?:\.\d+)?[eE]|0\.0000)")
# A number of 19+ digits may not fit 64 bits (json writes floats that long with an exponent).
_LONG_INT = re.compile(rb"[:,\[]-?\d{19}")


# Cheap screens first (bytes.translate and substring search run in C; a regex over every line
# costs as much as json itself): digits become "0", e/E "e", everything else a space.
_SHAPE = bytes(0x30 if 0x30 <= b <= 0x39 else 0x65 if b in b"eE" else 0x20 for b in range(256))


def _maybe_exponent(line: bytes) -> bool:
    if b"0.0000" not in line and b"0e" not in line.translate(_SHAPE):
        return False
    return _ORJSON_DIFFERS.search(line) is not None


def _maybe_long_int(line: bytes) -> bool:
    return b"0" * 19 in line.translate(_SHAPE) and _LONG_INT.search(line) is not None


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)  # let the json module decide, as it always did


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


def shard_path(store_dir: Path | str, address: str) -> Path:
    """Where the shard with this address lives inside a store folder; an address that is not 64
    lowercase hex digits raises :class:`~heal_batch.store.names.RunFolderError`."""
    check_address(address)
    return Path(store_dir) / address[:2] / f"{address}{SUFFIX}"


def address_of(path: Path | str) -> str:
    """The address a shard file claims by its name."""
    name = Path(path).name
    try:
        return check_address(name.removesuffix(SUFFIX) if name.endswith(SUFFIX) else None)
    except RunFolderError:
        raise ShardError(f"{path}: not a shard file name (expected <sha256>{SUFFIX})") from None


class ShardWriter:
    """Streams records into a new shard; :attr:`address` is set by :meth:`close`.

    Leaving the ``with`` block on an exception discards the temp file, so a failed task
    never publishes a partial shard.
    """

    def __init__(self, store_dir: Path | str):
        self.store_dir = Path(store_dir)
        self.count = 0
        self.address: str | None = None
        self.path: Path | None = None
        tmp_dir = self.store_dir / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        self._tmp = Path(tmp)
        honour_umask(fd)
        self._raw = os.fdopen(fd, "wb")
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self._zst = compressor.stream_writer(self._raw, closefd=False)
        self._sha = hashlib.sha256()

    def write(self, record: dict[str, Any]) -> None:
        line = canonical_line(record)
        self._sha.update(line)
        self._zst.write(line)
        self.count += 1

    def write_all(self, records) -> None:
        for record in records:
            self.write(record)

    def close(self) -> str:
        """Finish the frame, fsync, rename into place; returns the address."""
        if self.address is not None:
            return self.address
        self._zst.flush(zstandard.FLUSH_FRAME)
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        address = self._sha.hexdigest()
        final = shard_path(self.store_dir, address)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)  # same records → same bytes, so replacing a twin is harmless
        _fsync_dir(final.parent)
        self.address, self.path = address, final
        return address

    def abort(self) -> None:
        """Drop the temp file; nothing becomes visible. Never raises for a failing close (a full
        disk fails the flush): the data is discarded anyway, and the caller's error is the one
        that counts."""
        try:
            if self.address is None and not self._raw.closed:
                self._raw.close()
        except OSError:
            pass
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def sweep_stale_parts(store_dir: Path | str, older_than_s: float = 3600.0) -> tuple[int, int]:
    """Delete temp files of writers that died (SIGKILL, node loss) without cleaning up.

    Only ``<store>/.tmp/*.part`` files untouched for ``older_than_s`` seconds go: a live writer
    appends as it streams, so its file stays fresh. Call it when no task of the run is in flight.
    Returns (files removed, bytes freed).
    """
    removed = freed = 0
    cutoff = time.time() - older_than_s
    for part in (Path(store_dir) / ".tmp").glob("*.part"):
        try:
            stat = part.stat()
            if stat.st_mtime < cutoff:
                part.unlink()
                removed, freed = removed + 1, freed + stat.st_size
        except FileNotFoundError:  # another sweeper or its writer got there first
            continue
    return removed, freed


def write_records(store_dir: Path | str, records) -> str:
    """Write an iterable of records as one shard and return its address."""
    with ShardWriter(store_dir) as writer:
        writer.write_all(records)
    return writer.address  # type: ignore[return-value]


def read_records(path: Path | str, expected: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of a shard, verifying its sha256 against ``expected`` (or its name).

    The check completes when the last record has been yielded; a consumer that writes its
    own output only after exhausting the iterator never publishes data from a bad shard.
    """
    path = Path(path)
    expected = expected or address_of(path)
    sha = hashlib.sha256()
    for lineno, line in enumerate(_lines(path), start=1):
        sha.update(line)
        try:
            yield parse_line(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ShardError(f"{path}:{lineno}: not valid JSON ({exc})") from None
    if sha.hexdigest() != expected:
        raise ShardError(
            f"{path}: content hash {sha.hexdigest()[:16]}… does not match its address "
            f"{expected[:16]}…; the shard is corrupt: delete it and rerun the task that wrote it"
        )


def verify(path: Path | str, expected: str | None = None) -> int:
    """Fully verify a shard and return its record count; raises :class:`ShardError`."""
    return sum(1 for _ in read_records(path, expected))


def _lines(path: Path) -> Iterator[bytes]:
    if not path.is_file():
        raise ShardError(f"{path}: shard not found")
    dobj = zstandard.ZstdDecompressor().decompressobj()
    pending = b""
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_READ_CHUNK):
                pending += dobj.decompress(chunk)
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line + b"\n"
    except zstandard.ZstdError as exc:
        raise ShardError(f"{path}: corrupt zstd data ({exc})") from None
    # A file cut inside the frame decodes quietly up to the cut; only eof proves it is whole.
    if not dobj.eof or pending:
        raise ShardError(f"{path}: truncated (the zstd frame ends early)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
