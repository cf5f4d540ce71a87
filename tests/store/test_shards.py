import os
import subprocess
import sys
import textwrap

import pytest

from heal_batch.store.shards import (
    ShardError,
    ShardWriter,
    read_records,
    shard_path,
    verify,
    write_records,
)

RECORDS = [
    {"id": f"p{i}", "x": i / 3, "text": "héllo ∑", "nested": {"b": 1, "a": [1, 2]}}
    for i in range(500)
]


def test_round_trip(tmp_path):
    address = write_records(tmp_path, RECORDS)
    path = shard_path(tmp_path, address)
    assert path.parent.name == address[:2]
    assert list(read_records(path)) == RECORDS
    assert verify(path) == len(RECORDS)


def test_same_records_same_address_whatever_key_order(tmp_path):
    shuffled = [dict(reversed(list(r.items()))) for r in RECORDS]
    assert write_records(tmp_path / "a", RECORDS) == write_records(tmp_path / "b", shuffled)
    assert write_records(tmp_path / "a", RECORDS[:-1]) != write_records(tmp_path / "a", RECORDS)


def test_address_is_sha256_of_canonical_uncompressed_bytes(tmp_path):
    import hashlib

    address = write_records(tmp_path, [{"b": 1, "a": "é"}])
    assert address == hashlib.sha256('{"a":"é","b":1}\n'.encode()).hexdigest()


@pytest.mark.parametrize("damage", ["bitflip", "truncate", "truncate_tail", "empty"])
def test_damage_is_detected_and_names_the_file(tmp_path, damage):
    path = shard_path(tmp_path, write_records(tmp_path, RECORDS))
    data = bytearray(path.read_bytes())
    if damage == "bitflip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "truncate_tail":
        data = data[:-4]
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=str(path.name)):
        verify(path)


def test_wrong_address_is_detected(tmp_path):
    path = shard_path(tmp_path, write_records(tmp_path, RECORDS))
    other = shard_path(tmp_path, "0" * 64)
    other.parent.mkdir(parents=True)
    path.rename(other)
    with pytest.raises(ShardError, match="does not match its address"):
        verify(other)


def test_exception_inside_writer_publishes_nothing(tmp_path):
    with pytest.raises(RuntimeError), ShardWriter(tmp_path) as writer:
        writer.write({"a": 1})
        raise RuntimeError("boom")
    assert not list(tmp_path.glob("*/*.jsonl.zst"))
    assert not list((tmp_path / ".tmp").iterdir())


def test_crash_between_temp_write_and_rename_leaves_no_visible_shard(tmp_path):
    script = textwrap.dedent(f"""
        import os
        from heal_batch.store.shards import ShardWriter
        w = ShardWriter({str(tmp_path)!r})
        for i in range(1000):
            w.write({{"i": i}})
        w._zst.flush()
        os._exit(9)   # dies before close(): no fsync, no rename
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == 9
    assert list((tmp_path / ".tmp").iterdir()), "the temp file was written"
    assert not list(tmp_path.rglob("*.jsonl.zst")), "no shard may be visible"


def test_nan_is_refused(tmp_path):
    with pytest.raises(ValueError):
        write_records(tmp_path, [{"x": float("nan")}])
    assert os.listdir(tmp_path / ".tmp") == []


def test_sweep_removes_only_stale_temp_files_of_dead_writers(tmp_path):
    import os
    import time

    from heal_batch.store.shards import ShardWriter, sweep_stale_parts

    live = ShardWriter(tmp_path)  # still streaming: its .part is fresh
    live.write({"id": "a"})
    dead = tmp_path / ".tmp" / "killed.part"
    dead.write_bytes(b"x" * 1000)
    old = time.time() - 7200
    os.utime(dead, (old, old))
    keep = tmp_path / ".tmp" / "notes.txt"  # not a shard temp file
    keep.write_text("")
    os.utime(keep, (old, old))

    assert sweep_stale_parts(tmp_path, older_than_s=3600) == (1, 1000)
    assert not dead.exists() and keep.exists()
    live.close()  # the live writer was left alone and still publishes its shard
    assert list(read_records(live.path)) == [{"id": "a"}]
    assert sweep_stale_parts(tmp_path / "no-store") == (0, 0)


def test_abort_removes_the_temp_file_even_when_closing_fails(tmp_path):
    import errno

    writer = ShardWriter(tmp_path)
    writer.write({"a": 1})
    raw_close = writer._raw.close

    def full_disk():
        raw_close()
        raise OSError(errno.ENOSPC, "No space left on device")

    writer._raw.close = full_disk
    writer.abort()
    assert os.listdir(tmp_path / ".tmp") == []
