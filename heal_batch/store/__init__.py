"""The store: content-addressed shards, receipts, manifests and run keys (no knowledge of
stages)."""

from heal_batch.store.shards import (
    ShardError,
    ShardWriter,
    read_records,
    shard_path,
    verify,
    write_records,
)

__all__ = ["ShardError", "ShardWriter", "read_records", "shard_path", "verify", "write_records"]
