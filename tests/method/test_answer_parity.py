"""One rule for the final answer: grading, PURE's token span and eval/utils.py agree on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from heal_batch.method.answers import final_answer_char_span, final_answer_span
from heal_batch.method.grading import extract_answer, grade
from heal_batch.method.steps import offsets_from_tokens
from tests.method.answer_cases import CASES

EVAL_UTILS = Path(__file__).resolve().parents[2] / "eval" / "utils.py"


def _load_eval_utils():
    # lm-eval imports eval/utils.py by path, without heal_batch; so does this test.
    spec = importlib.util.spec_from_file_location("heal_eval_utils_parity", EVAL_UTILS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_utils = _load_eval_utils()
cases = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


@cases
def test_grading_extracts_the_table_answer(case):
    assert extract_answer(case.text, "auto") == case.answer


@cases
def test_eval_utils_extracts_what_grading_extracts(case):
    assert eval_utils.extract_answer(case.text, allow_hash=True) == case.answer
    boxed_only = extract_answer(case.text, "boxed")
    assert eval_utils.extract_answer(case.text, allow_hash=False) == boxed_only


@cases
def test_pure_span_covers_what_grading_reads(case):
    found = final_answer_char_span(case.text)
    raw = None if found is None else case.text[found.start : found.end]
    assert raw == case.raw
    if found is not None and found.marker == "boxed":
        assert extract_answer(case.text) == raw  # a box's answer is read as it stands
    per_char = [(i, i + 1) for i in range(len(case.text))]
    tokens = final_answer_span(case.text, per_char)
    assert (case.text[tokens[0] : tokens[1]] if tokens else None) == (case.raw or None)


@pytest.mark.parametrize(
    ("tokens", "reference"),
    [
        (["So", " \\fbox", "{1", "2", "}", "."], "12"),
        (["So", " \\boxed", " {1", "2", "}", "."], "12"),
        (["\\boxed{3}", " wait", " \\boxed{1", "2", "}", " and", " \\boxed{"], "12"),
    ],
)
def test_an_answer_graded_correct_has_a_pure_span(tokens, reference):
    # The bug this rule fixes: PURE read only the last "\boxed{" and dropped these as
    # no_boxed_answer although grading had counted them correct.
    text, offsets = offsets_from_tokens(tokens)
    assert grade(text, reference).correct
    assert final_answer_span(text, offsets) == (2, 4)
