"""The oracle on built-in problems: score labels candidates (schema-valid), curriculum counts
PURE's fates against the labels."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import polars as pl

from heal_batch.pipeline.contract import Counters
from heal_batch.stages.curriculum.oracle import derived_in_set, labels_reader, oracle_counters
from heal_batch.stages.score.stage import oracle_field

SCORED = json.loads(
    (Path(__file__).resolve().parents[2] / "manifests" / "scored.schema.json").read_text()
)


def candidate(cid: str, after: str, source: str | None = "builtin/arith-L1") -> dict:
    prefix = "Let me add.\n\n"
    return {
        "kind": "repair",
        "id": cid,
        "problem_id": "arith-s0-0001",
        "problem": "What is 8 + 8?",
        "reference_answer": "16",
        "source": source,
        "text": prefix + after,
        "cut_char": len(prefix),
    }


def test_score_labels_builtin_candidates_only():
    counters = Counters()
    shortcut = candidate("a#s0#c0", "The answer is \\boxed{16}.")
    derived = candidate("a#s0#c1", "8 + 8 = 16, The answer is \\boxed{16}.")
    assert oracle_field(shortcut, counters) == {"oracle": "shortcut"}
    assert oracle_field(derived, counters) == {"oracle": "derived"}
    assert oracle_field(candidate("g#s0#c0", "\\boxed{16}", source="gsm8k"), counters) == {}
    assert oracle_field(candidate("n#s0#c0", "\\boxed{16}", source=None), counters) == {}
    assert counters == {"oracle_shortcut": 1, "oracle_derived": 1}
    pure = {
        "ratio": 1.0,
        "max_step_ppl": 2.0,
        "answer_nll": 0.1,
        "step_ppls": [2.0],
        "reasoning_tokens": 9,
        "first_step": 1,
        "n_steps": 2,
        "n_tokens": 20,
        "unscored_reason": None,
        "scorer": "t",
        "with_hint": False,
        "context": "teacher",
        "eps": 0.01,
    }
    jsonschema.validate(derived | {"pure": pure, "oracle": "derived"}, SCORED)


def test_curriculum_counts_pure_fates_against_the_labels():
    records = [
        {"id": "r0", "oracle": "derived"},
        {"id": "r1", "oracle": "shortcut"},
        {"id": "r2", "oracle": "shortcut"},
        {"id": "r3", "oracle": "derived"},
        {"id": "r4", "oracle": "derived"},
        {"id": "g0", "oracle": "derived"},
        {"id": "n0"},
    ]
    labels: dict[str, str] = {}
    read = labels_reader(lambda address: iter(records), labels)
    assert [r["id"] for r in read("shard")] == [r["id"] for r in records]
    assert "n0" not in labels and len(labels) == 6
    table = pl.DataFrame(
        {
            "id": ["r0", "r1", "r2", "r3", "r4", "g0", "n0"],
            "kind": ["repair"] * 5 + ["answer_guided", "natural"],
            "fate": [
                "kept",
                "kept",
                "no_reasoning_after_cut",
                "top_lambda",
                "duplicate",
                "cap",
                "kept",
            ],
        }
    )
    c = oracle_counters(table, labels, ["repair"])
    assert c["oracle_candidates"] == 5 and c["oracle_derived"] == 3
    assert c["oracle_kept"] == 3 and c["oracle_kept_derived"] == 2  # duplicate: kept by PURE
    assert c["oracle_rule_top_lambda_derived"] == 1
    assert c["oracle_rule_no_reasoning_after_cut"] == 1
    assert oracle_counters(table, {}, ["repair"]) == {}
    assert oracle_counters(table, labels, ["answer_guided", "repair"])["oracle_candidates"] == 6
    # a set counts only its own rows: the duplicate r4, though kept by PURE, is not in it
    in_set = table.filter(pl.col("fate") == "kept")
    assert derived_in_set(in_set, labels) == {"kept_repair_derived": 1}
    assert derived_in_set(table, labels) == {
        "kept_repair_derived": 3,
        "kept_answer_guided_derived": 1,
    }
    assert derived_in_set(in_set, {}) == {}
