"""ingest: validation errors name file and line; no shard is published for a bad input."""

import json

import pytest

from heal_batch.executors import make_executor
from heal_batch.pipeline.launch import launch
from heal_batch.stages.ingest import IngestConfig, shard_of
from heal_batch.store.layout import Layout
from heal_batch.store.receipts import read_receipts
from heal_batch.store.shards import read_records, shard_path
from tests.fixtures.toy_stage import ToyPipeline, write_problems

GOOD = '{"id": "a", "problem": "1+1?", "answer": "2"}\n'


def ingest(tmp_path, paths, shards=2):
    cfg = ToyPipeline(
        workdir=str(tmp_path / "run"),
        executor="debug",
        ingest=IngestConfig(paths=[str(p) for p in paths], num_shards=shards),
    )
    result = launch(cfg, make_executor("debug"), ["ingest"], echo=lambda *_: None)
    return cfg, result


def outputs(cfg, result):
    layout = Layout(cfg.workdir)
    receipts = read_receipts(layout, "ingest", result.plans[0].key)
    return [
        list(read_records(shard_path(layout.store, r.output))) for _, r in sorted(receipts.items())
    ]


@pytest.mark.parametrize(
    "content,expected",
    [
        (GOOD + '{"id": "b", "problem": "2+2?"\n', r"bad\.jsonl:2: malformed JSON"),
        (GOOD + '{"id": "b", "problem": "2+2?"}\n', r"bad\.jsonl:2: missing field 'answer'"),
        (
            GOOD + '{"id": 7, "problem": "2+2?", "answer": "4"}\n',
            r"bad\.jsonl:2: field 'id' must be a string, got int",
        ),
        (GOOD + "[1, 2]\n", r"bad\.jsonl:2: expected a JSON object"),
        (b'{"id": "a", "problem": "caf\xe9", "answer": "1"}\n', r"bad\.jsonl:1: not UTF-8"),
        ("", r"bad\.jsonl: empty file"),
        (
            GOOD + '{"id": "a", "problem": "1+1?", "answer": "3"}\n',
            (
                r"bad\.jsonl:2: duplicate id 'a' with different content "
                r"\(first seen at .*bad\.jsonl:1\)"
            ),
        ),
    ],
)
def test_bad_input_names_file_and_line_and_publishes_nothing(tmp_path, content, expected):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    cfg, result = ingest(tmp_path, [bad])
    assert result.failed == {"ingest": [0, 1]}
    receipts = read_receipts(Layout(cfg.workdir), "ingest", result.plans[0].key)
    for receipt in receipts.values():
        assert receipt.state == "failed" and receipt.output is None
        assert __import__("re").search(expected, receipt.error), receipt.error
    assert not list((tmp_path / "run" / "store").glob("*/*.jsonl.zst"))


def test_missing_file_is_a_plan_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such problem file"):
        ingest(tmp_path, [tmp_path / "nope.jsonl"])


def test_split_is_deterministic_complete_and_deduplicated(tmp_path):
    problems = write_problems(tmp_path / "p.jsonl", n=30)
    dup = tmp_path / "dup.jsonl"
    dup.write_text(problems.read_text().splitlines()[0] + "\n")
    cfg, result = ingest(tmp_path, [problems, dup], shards=3)
    shards = outputs(cfg, result)
    ids = [r["id"] for shard in shards for r in shard]
    assert sorted(ids) == sorted(f"q{i}" for i in range(30))
    for index, shard in enumerate(shards):
        assert all(shard_of(r["id"], 3) == index for r in shard)
    counters = [t.counters for t in result.plans[0].manifest.tasks]
    assert sum(c.get("dropped_duplicate", 0) for c in counters) == 1
    record = next(r for shard in shards for r in shard if r["id"] == "q0")
    assert record == {
        "id": "q0",
        "problem": "What is 0 + 0?",
        "answer": "0",
        "source": "p",
        "meta": {},
    }


def test_parquet_and_extra_fields_go_to_meta(tmp_path):
    import polars as pl

    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {"id": ["x", "y"], "problem": ["a?", "b?"], "answer": ["1", "2"], "level": [3, 4]}
    ).write_parquet(path)
    cfg, result = ingest(tmp_path, [path], shards=1)
    (shard,) = outputs(cfg, result)
    assert [r["meta"] for r in shard] == [{"level": 3}, {"level": 4}]


def test_same_input_gives_same_addresses(tmp_path):
    problems = write_problems(tmp_path / "p.jsonl")
    _, a = ingest(tmp_path / "a", [problems], shards=4)
    _, b = ingest(tmp_path / "b", [problems], shards=4)
    assert a.plans[0].manifest.outputs == b.plans[0].manifest.outputs


def test_numeric_answer_is_normalised_to_string(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text(json.dumps({"id": "n", "problem": "?", "answer": 4}) + "\n")
    cfg, result = ingest(tmp_path, [path], shards=1)
    assert outputs(cfg, result)[0][0]["answer"] == "4"
