"""heal_batch.method.oracle: labels of hand-made repair texts, built-in computations, and PURE's
precision and recall against the oracle."""

from __future__ import annotations

from fractions import Fraction

import pytest

from heal_batch.data.builtin import generate_problems
from heal_batch.method.oracle import (
    builtin_results,
    is_builtin,
    oracle_label,
    precision_recall,
    pure_vs_oracle,
)

L1 = "What is 8 + 8?"
L3 = (
    "Sara buys 4 notebooks at 12 dollars each and 3 pens at 5 dollars each. She pays with a "
    "100 dollar bill. How many dollars of change does Sara get?"
)


@pytest.mark.parametrize(
    ("text", "reference", "problem", "label"),
    [
        # the two kinds seen in the demo's candidates
        ("The answer is \\boxed{76}.", "76", None, "shortcut"),
        ("8 + 8 = 16, The answer is \\boxed{16}.", "16", L1, "derived"),
        ("8+8=16\nThe answer is \\boxed{16}.", "16", L1, "derived"),
        ("8 + 8 = 17.\nThe answer is \\boxed{16}.", "16", L1, "wrong_step"),
        ("8 + 8 = 16.\n16 - 8 = 8.\nSo \\boxed{16}.", "16", L1, "shortcut"),  # last result 8
        ("76 - 0 = 76. The answer is \\boxed{76}.", "76", L1, "ungrounded"),
        ("76 - 0 = 76. The answer is \\boxed{76}.", "76", None, "derived"),  # no grounding
        ("8 + 8 = 16. The answer is \\boxed{15}.", "16", L1, "wrong_answer"),
        ("8 + 8 = 16. The answer is 16.", "16", L1, "no_answer"),
        ("The answer is \\boxed{}.", "16", L1, "no_answer"),
        # level 3: products, a sum and change; results of the prefix may be reused
        ("4 x 12 = 48\n3 * 5 = $15\n48 + 15 = 63\n100 - 63 = 37\n\\boxed{37}", "37", L3, "derived"),
        ("63 dollars in all.\n100 - 63 = 37\nThe change is \\boxed{37}.", "37", L3, "derived"),
        ("4 × 12 + 3 × 5 = 63, 100 - 63 = 37 so \\boxed{37}", "37", L3, "derived"),
        ("4 * 12 + 3 * 5 = 75, 100 - 63 = 37 so \\boxed{37}", "37", L3, "wrong_step"),
        ("She gets \\boxed{37} dollars back.", "37", L3, "shortcut"),
        ("10 / 4 = 2.5 then \\boxed{2.5}", "2.5", None, "derived"),
        ("3 / 0 = 1 then \\boxed{1}", "1", None, "wrong_step"),
        # a step written after the final answer does not count
        ("\\boxed{16} because 8 + 8 = 16", "16", L1, "shortcut"),
    ],
)
def test_labels(text, reference, problem, label):
    assert oracle_label(text, reference, problem) == label


def test_builtin_results_follow_each_level():
    assert builtin_results("What is 7 + 5?") == [12]
    assert builtin_results("What is 4 + 5 - 3?") == [9, 6]
    assert builtin_results(L3) == [48, 15, 63, 37]
    assert builtin_results("Solve x^2 = 4.") == []


def test_builtin_results_end_at_every_generated_answer():
    for problem in generate_problems(60, seed=3):
        assert is_builtin(problem["source"])
        assert builtin_results(problem["problem"])[-1] == Fraction(problem["answer"])


def test_is_builtin():
    assert is_builtin("builtin/arith-L3") and not is_builtin("gsm8k") and not is_builtin(None)


def test_pure_vs_oracle_counts_precision_recall_and_rules():
    pairs = [
        ("kept", "derived"),
        ("kept", "derived"),
        ("kept", "shortcut"),
        ("no_reasoning_after_cut", "shortcut"),
        ("top_lambda", "derived"),
        ("above_reference_q97.5", "wrong_step"),
    ]
    c = pure_vs_oracle(pairs)
    assert c["oracle_candidates"] == 6 and c["oracle_derived"] == 3 and c["oracle_shortcut"] == 2
    assert c["oracle_kept"] == 3 and c["oracle_kept_derived"] == 2
    assert c["oracle_rule_no_reasoning_after_cut"] == 1
    assert c["oracle_rule_no_reasoning_after_cut_derived"] == 0
    assert c["oracle_rule_top_lambda_derived"] == 1
    assert c["oracle_rule_above_reference_q97_5"] == 1
    assert precision_recall(c) == (2 / 3, 2 / 3)
    assert precision_recall(pure_vs_oracle([])) == (None, None)
