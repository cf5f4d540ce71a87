"""Store and launcher benchmarks; prints figures (ratios against a baseline measured in the same
run).

    python tests/bench/bench_store.py

1. shard write + verify + read MB/s against plain ``zstandard`` + ``json`` on the same records;
2. ``status`` and planning time over 10,000 receipts;
3. ``heal-batch --help`` wall time.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from heal_batch.store.shards import read_records, shard_path, write_records  # noqa: E402


def records(n: int = 20000) -> list[dict]:
    text = "Let me think step by step. " * 20
    return [
        {
            "id": f"p{i}",
            "sample_index": i % 8,
            "completion": text,
            "entropies": "AAAA" * 64,
            "correct": i % 3 == 0,
            "pass_rate": 0.375,
        }
        for i in range(n)
    ]


def bench_shards(tmp: Path) -> None:
    recs = records()
    raw_bytes = sum(len(json.dumps(r)) + 1 for r in recs)

    def ours():
        address = write_records(tmp / "store", recs)
        return sum(1 for _ in read_records(shard_path(tmp / "store", address)))

    def baseline():
        buf = io.BytesIO()
        with zstandard.ZstdCompressor(level=3).stream_writer(buf, closefd=False) as w:
            for r in recs:
                w.write((json.dumps(r) + "\n").encode())
        path = tmp / "plain.jsonl.zst"
        path.write_bytes(buf.getvalue())
        with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
            return sum(1 for _ in io.TextIOWrapper(reader, encoding="utf-8") if json.loads(_))

    t_ours = min(_time(ours) for _ in range(3))
    t_base = min(_time(baseline) for _ in range(3))
    mb = raw_bytes / 1e6
    print(
        f"shard write+verify+read: {mb / t_ours:7.1f} MB/s  "
        f"(plain zstandard+json: {mb / t_base:7.1f} MB/s, "
        f"ratio {t_base / t_ours:.2f}x) over {len(recs)} records, {mb:.1f} MB uncompressed"
    )


def bench_status(tmp: Path, n: int = 10000) -> None:
    from heal_batch.executors.debug import DebugExecutor
    from heal_batch.pipeline import status
    from heal_batch.pipeline.launch import launch, plan
    from heal_batch.stages.ingest import IngestConfig
    from heal_batch.store.layout import Layout
    from heal_batch.store.manifests import load_manifest
    from heal_batch.store.receipts import write_receipt
    from tests.fixtures.toy_stage import ToyPipeline, write_problems

    problems = write_problems(tmp / "p.jsonl", n=20)
    cfg = ToyPipeline(
        workdir=str(tmp / "run"),
        executor="debug",
        ingest=IngestConfig(paths=[str(problems)], num_shards=n),
    )
    layout = Layout(cfg.workdir)
    plans = launch(cfg, DebugExecutor(), ["ingest"], dry_run=True, echo=lambda *_: None).plans
    key = plans[0].key
    # Fabricate n done receipts pointing at one real shard (running 10,000 tasks is not the point).
    address = write_records(layout.store, [{"id": "x"}])
    from heal_batch.store.receipts import Receipt

    for i in range(n):
        write_receipt(
            layout,
            Receipt(stage="ingest", run_key=key, index=i, state="done", output=address, records=1),
        )
    t_plan = _time(lambda: plan(cfg, ["ingest"]))
    launch(cfg, DebugExecutor(), ["ingest"], echo=lambda *_: None)  # seals the manifest
    manifest = load_manifest(layout.manifest("ingest", key))
    manifest.sealed = False  # force status to refresh from all receipts
    from heal_batch.store.manifests import save_manifest

    save_manifest(layout, manifest)
    t_status = _time(lambda: status.collect(layout.workdir))
    t_status_sealed = _time(lambda: status.collect(layout.workdir))
    print(
        f"planning over {n} receipts: {t_plan:.2f} s; "
        f"status refresh over {n} receipts: {t_status:.2f} s; "
        f"status of a sealed run: {t_status_sealed:.3f} s"
    )


def bench_help() -> None:
    runs = [
        _time(lambda: subprocess.run(["heal-batch", "--help"], capture_output=True, check=True))
        for _ in range(5)
    ]
    bare = [
        _time(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)) for _ in range(5)
    ]
    print(
        f"heal-batch --help: {statistics.median(runs):.3f} s wall "
        f"(bare python start: {statistics.median(bare):.3f} s)"
    )


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        bench_shards(Path(d))
        bench_status(Path(d))
    bench_help()
