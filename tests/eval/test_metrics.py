"""heal_batch.evaluation.metrics: unbiased pass@k against the closed form, bootstrap intervals, and
the sampled-pass fields of an eval record (per-benchmark n, seeds, schema)."""

from __future__ import annotations

import json
from fractions import Fraction
from math import comb
from pathlib import Path

import jsonschema
import pytest

from heal_batch.evaluation import harness as ev
from heal_batch.evaluation import records as ev_records
from heal_batch.evaluation.harness import EvalConfig
from heal_batch.evaluation.metrics import (
    bootstrap_interval,
    mean_pass_at_k,
    pass_at_k,
    report_ks,
    sampled_metrics,
)

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "manifests" / "eval_result.schema.json").read_text()
)


def closed_form(n: int, c: int, k: int) -> float:
    return 1 - comb(n - c, k) / comb(n, k)  # comb(m, k) == 0 for m < k


def test_pass_at_k_matches_the_closed_form_on_every_count():
    for n in range(1, 41):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 2, 0.5),  # C(3,2)/C(4,2) = 3/6
        (10, 0, 5, 0.0),  # nothing correct
        (10, 10, 1, 1.0),  # everything correct
        (10, 6, 5, 1.0),  # n - c = 4 < k = 5: every draw of 5 holds a correct one
        (10, 1, 10, 1.0),  # k = n and one correct
        (5, 2, 1, 0.4),  # pass@1 is c / n
        (32, 3, 8, 1 - comb(29, 8) / comb(32, 8)),
    ],
)
def test_pass_at_k_hand_made_counts(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_a_float():
    n, c, k = 2000, 7, 400  # C(2000, 400) ~ 1e432: float division of the two would overflow
    exact = 1 - Fraction(comb(n - c, k), comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)


def test_pass_at_k_rejects_impossible_counts():
    for n, c, k in ((4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)):
        with pytest.raises(ValueError, match="pass@k needs"):
            pass_at_k(n, c, k)


def test_mean_pass_at_k_and_reported_ks():
    assert mean_pass_at_k([0, 1, 4], n=4, k=2) == pytest.approx((0 + 0.5 + 1) / 3)
    assert mean_pass_at_k([0, 1, 4], n=4, k=1) == pytest.approx(5 / 12)  # = avg@n
    assert report_ks(1) == [1] and report_ks(4) == [1, 2, 4] and report_ks(6) == [1, 2, 4, 6]
    assert report_ks(32) == [1, 2, 4, 8, 16, 32]


def test_bootstrap_interval_is_seeded_and_holds_the_mean():
    values = [(i * 37 % 101) / 100 for i in range(30)]
    mean = sum(values) / len(values)
    low, high = bootstrap_interval(values, seed=0)
    assert low < mean < high and (low, high) == bootstrap_interval(values, seed=0)
    assert bootstrap_interval(values, seed=1) != (low, high)
    assert bootstrap_interval([0.25] * 12, seed=0) == (0.25, 0.25)
    wide = bootstrap_interval(values[:6], seed=0)
    assert wide[1] - wide[0] > high - low  # fewer problems, wider interval


def _sample_rows(counts: list[int], n: int) -> list[dict]:
    """lm-eval's per-document sample rows as the harness sees them (acc = c / n)."""
    return [{"doc_id": i, "acc": c / n, "pass_at_n": float(c > 0)} for i, c in enumerate(counts)]


def test_record_fields_from_lm_eval_samples_per_benchmark_n():
    cfg = EvalConfig(
        benchmarks=["aime24", "gsm8k"], n_samples=4, n_samples_per_benchmark={"aime24": 32}, seed=7
    )
    assert cfg.samples_for("aime24") == 32 and cfg.samples_for("gsm8k") == 4
    aime = [0, 0, 1, 5, 32, 3]
    samples = {
        "heal_aime24_sampled": list(reversed(_sample_rows(aime, 32))),
        "heal_gsm8k_sampled": _sample_rows([4, 0, 2], 4),
    }
    rec = ev_records.sampled_fields("aime24", samples, cfg)
    assert rec["n_samples"] == 32 and rec["correct_counts"] == aime  # doc order
    assert list(rec["pass_at_k"]) == ["1", "2", "4", "8", "16", "32"]
    assert rec["pass_at_k"]["8"] == pytest.approx(mean_pass_at_k(aime, 32, 8))
    assert rec["pass_at_k"]["1"] == pytest.approx(sum(aime) / 32 / len(aime))
    assert rec["seeds"] == {
        "lm_eval_random": 7,
        "numpy": 7,
        "torch": 7,
        "vllm": None,
        "bootstrap": 7,
    }
    assert rec["interval"]["seed"] == 7 and rec["interval"]["confidence"] == 0.95
    gsm = ev_records.sampled_fields("gsm8k", samples, cfg)
    assert gsm["n_samples"] == 4 and list(gsm["pass_at_k"]) == ["1", "2", "4"]
    for fields in (rec, gsm, ev_records.sampled_fields("gsm8k", {}, EvalConfig(n_samples=0))):
        _validate_fields(fields)
    assert ev_records.sampled_fields("gsm8k", {}, EvalConfig(n_samples=0))["pass_at_k"] is None


def _validate_fields(fields: dict) -> None:
    schema = {
        "$defs": SCHEMA["$defs"],
        "type": "object",
        "additionalProperties": False,
        "properties": {k: SCHEMA["properties"][k] for k in fields},
    }
    jsonschema.validate(fields, schema)
    assert set(fields) <= set(SCHEMA["required"])


def test_sampled_metrics_intervals_hold_their_estimates():
    fields = sampled_metrics([0, 1, 2, 3, 4] * 6, n=4, seed=0)
    low, high = fields["avg_at_n_ci"]
    assert low < 0.5 < high
    for k, value in fields["pass_at_k"].items():
        low, high = fields["pass_at_k_ci"][k]
        assert low <= value <= high


def test_per_benchmark_n_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown benchmark 'aime2024'"):
        EvalConfig(n_samples_per_benchmark={"aime2024": 32})
    with pytest.raises(ValueError, match=r"n_samples_per_benchmark\['aime24'\]=-1"):
        EvalConfig(n_samples_per_benchmark={"aime24": -1})
    with pytest.raises(ValueError, match="nothing to evaluate"):
        EvalConfig(benchmarks=["aime24"], greedy=False, n_samples_per_benchmark={"aime24": 0})


def test_tasks_get_their_benchmarks_repeats(shared_data):
    from lm_eval.tasks import TaskManager

    cfg = EvalConfig(
        benchmarks=["aime24", "amc23"],
        n_samples=4,
        n_samples_per_benchmark={"aime24": 32, "amc23": 0},
    )
    manager = TaskManager(
        include_path=str(ev.TASKS_DIR),
        include_defaults=False,
        metadata={"data_dir": str(shared_data)},
    )
    tasks = ev._load_tasks(manager, ["aime24", "amc23"], cfg)
    repeats = {task.config.task: task.config.repeats for task in tasks}
    assert repeats == {"heal_aime24_greedy": 1, "heal_amc23_greedy": 1, "heal_aime24_sampled": 32}


def test_report_shows_pass_at_k_intervals_and_seeds():
    from heal_batch.report.evaltable import PASS_AT_K_TITLE, evaluation_blocks
    from heal_batch.report.render import Table

    records = []
    for ckpt, counts in (("base", [0, 1, 0, 2]), ("heal-3", [4, 3, 0, 32])):
        for bench, n in (("aime24", 32), ("gsm8k", 4)):
            kept = [min(c, n) for c in counts]
            fields = ev_records.sampled_fields(
                bench,
                {f"heal_{bench}_sampled": _sample_rows(kept, n)},
                EvalConfig(n_samples=4, n_samples_per_benchmark={"aime24": 32}),
            )
            records.append(
                {
                    "checkpoint": ckpt,
                    "benchmark": bench,
                    "num_problems": 4,
                    "avg_at_n": fields["pass_at_k"]["1"],
                    "avg_at_n_stderr": 0.1,
                    **fields,
                }
            )
    blocks = evaluation_blocks(records)
    table = blocks[blocks.index(PASS_AT_K_TITLE) + 1]
    assert isinstance(table, Table)
    assert table.headers == [
        "checkpoint",
        "aime24 pass@1",
        "aime24 pass@32",
        "gsm8k pass@1",
        "gsm8k pass@4",
    ]
    heal3 = next(row for row in table.rows if row[0] == "HEAL stage III")
    expected = mean_pass_at_k([4, 3, 0, 32], 32, 32)
    low, high = records[2]["pass_at_k_ci"]["32"]
    assert heal3[2] == f"{expected:.3f} [{low:.3f}, {high:.3f}]"
    avg = next(b for b in blocks if isinstance(b, Table) and b.headers[1:] == ["aime24", "gsm8k"])
    assert avg.rows[0][1].startswith("0.023 ± 0.100 [")  # avg@n with its interval
    text = "\n".join(b for b in blocks if isinstance(b, str))
    assert '"bootstrap": 0' in text and "percentile bootstrap over problems" in text
