"""eval/utils.py: answer extraction, math-verify grading, avg@n scoring, local JSONL loading."""

from __future__ import annotations

import importlib.util
import json

import pytest
from math_verify import parse, verify

from heal_batch.evaluation.harness import TASKS_DIR


def _load_utils():
    # eval/ is not a package (lm-eval imports the file by path), so neither do we.
    spec = importlib.util.spec_from_file_location("heal_eval_utils", TASKS_DIR / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


utils = _load_utils()


@pytest.mark.parametrize(
    ("text", "allow_hash", "expected"),
    [
        (r"so the answer is \boxed{\frac{1}{2}}.", False, r"\frac{1}{2}"),
        (r"\boxed{3} wait, no: \boxed{\frac{a}{b^{2}}}", False, r"\frac{a}{b^{2}}"),  # last, nested
        (r"\fbox{7}", False, "7"),
        ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18\n#### 18", True, "18"),
        ("#### 1,000.", True, "1000"),
        (r"#### 5 then \boxed{7}", True, "7"),  # a box wins over '####' ...
        ("\\boxed{7}\n#### Check", True, "7"),  # ... wherever it stands (a markdown heading)
        ("#### 3, 4.", True, "3, 4"),  # only thousands separators are dropped
        ("#### 18", False, None),  # '####' only counts for GSM8K
        ("so 2 + 2 = 4 and the total is 18", True, None),  # a loose number is no answer
        (r"\boxed{unclosed", False, None),
    ],
)
def test_extract_answer(text, allow_hash, expected):
    assert utils.extract_answer(text, allow_hash) == expected


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        (r"\frac{1}{2}", "0.5", True),
        ("0.5", r"\frac{1}{2}", True),
        (r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt{3}}{2}", True),
        ("x^2+1", "1+x^2", True),
        ("(1,2)", "(1,2)", True),
        ("18", "18", True),
        ("17", "18", False),
        (r"\frac{1}{3}", "0.5", False),
    ],
)
def test_is_equivalent_agrees_with_math_verify(answer, reference, expected):
    assert utils.is_equivalent(answer, reference) is expected
    assert bool(verify(parse(f"${reference}$"), parse(f"${answer}$"))) is expected


def test_process_results_grades_each_repeat():
    doc = {"answer": "18"}
    responses = [r"\boxed{18}", "#### 18", r"\boxed{19}", "the answer is 18"]
    boxed_only = utils.process_results(doc, [responses])
    # flex: "#### 18" and "the answer is 18" count by their last number; \boxed{19} stays wrong
    assert boxed_only == {"acc": 0.25, "pass_at_n": 1.0, "answered": 0.5, "flex_acc": 0.75}
    gsm = utils.process_results_gsm8k(doc, [responses])
    assert gsm == {"acc": 0.5, "pass_at_n": 1.0, "answered": 0.75, "flex_acc": 0.75}
    none_right = utils.process_results({"answer": r"\frac{1}{2}"}, [["no answer", r"\boxed{2}"]])
    assert none_right == {"acc": 0.0, "pass_at_n": 0.0, "answered": 0.5, "flex_acc": 0.0}


@pytest.mark.parametrize(
    ("response", "flex"),
    [
        ("1. 6 + 2 = 8\n\nSo, the answer is 8.", 1.0),  # prose answer: the last number
        ("6 + 2 = 8, and 8 + 1 = 9", 0.0),  # the last number is not the answer
        (r"6 + 2 = \boxed{7}. Check: 8", 0.0),  # an explicit answer wins over later numbers
        ("It costs 1,008 dollars... no, 8.", 1.0),
        ("no number at all", 0.0),
    ],
)
def test_flex_acc_reads_the_last_number_only_without_an_explicit_answer(response, flex):
    assert utils.process_results({"answer": "8"}, [[response]])["flex_acc"] == flex


def test_last_number_drops_thousands_commas():
    assert utils.last_number("paid 1,200. Then -3.5") == "-3.5"
    assert utils.last_number("total 1,200.") == "1200"
    assert utils.last_number("none") is None


def test_keep_all_keeps_every_repeat():
    assert utils.keep_all(iter([("a", "b"), ("c",)]), None) == [["a", "b"], ["c"]]


def test_doc_to_text_appends_instruction():
    text = utils.doc_to_text({"problem": "What is 1+1?"})
    assert (
        text
        == "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}."
    )


def test_load_local_reads_rows_and_drops_meta(tmp_path):
    rows = [
        {"id": "a", "problem": "p", "answer": 5, "meta": {"x": [1]}},
        {"id": "b", "problem": "q", "answer": "x", "meta": {"x": "s"}},
    ]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = utils.load_local(data_dir=str(tmp_path), data_file="b.jsonl", version=1.0)
    assert ds["test"].column_names == ["id", "problem", "answer", "source"]
    assert ds["test"][0]["answer"] == "5"


def test_load_local_errors_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("HEAL_BATCH_DATA", raising=False)
    with pytest.raises(ValueError, match="data_dir"):
        utils.load_local(data_file="math500.jsonl")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        utils.load_local(data_dir=str(tmp_path), data_file="nope.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "problem": "p"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing field\(s\) \['answer'\]"):
        utils.load_local(data_dir=str(tmp_path), data_file="bad.jsonl")
