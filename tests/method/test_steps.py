from __future__ import annotations

import itertools

import pytest

from heal_batch.method.steps import (
    offsets_from_tokens,
    split_steps,
    split_token_strings,
    step_means,
)
from tests.method.helpers import make_steps


def _spans(steps):
    return [(s.token_start, s.token_end) for s in steps]


def _assert_tiles(text, steps, n_tokens):
    assert steps[0].token_start == 0 and steps[-1].token_end == n_tokens
    assert steps[0].char_start == 0 and steps[-1].char_end == len(text)
    for a, b in itertools.pairwise(steps):
        assert a.token_end == b.token_start and a.char_end == b.char_start
    assert [s.index for s in steps] == list(range(len(steps)))


def test_splits_on_blank_lines_and_keeps_the_delimiter_with_the_closing_step():
    tokens = ["One", " two", ".\n\n", "Three", " four", "\n\n", "Five"]
    text, steps = split_token_strings(tokens, min_step_tokens=1)
    assert _spans(steps) == [(0, 3), (3, 6), (6, 7)]
    assert text[: steps[1].char_start] == "One two.\n\n"
    assert text[steps[2].char_start :] == "Five"
    _assert_tiles(text, steps, len(tokens))


def test_blank_line_with_spaces_and_runs_of_blank_lines_make_one_boundary():
    tokens = ["a", "\n", "  \n", "\n\n", "b", "\n \n", "c"]
    _, steps = split_token_strings(tokens, min_step_tokens=1)
    assert _spans(steps) == [(0, 4), (4, 6), (6, 7)]


def test_single_newline_is_not_a_boundary():
    _, steps = split_token_strings(["a", "\n", "b", "\n", "c"], min_step_tokens=1)
    assert _spans(steps) == [(0, 5)]


def test_short_steps_merge_into_the_next_and_the_last_into_the_previous():
    # step lengths 1 (too short), 8, 3, 8, 2 (short tail) with min 8
    text, steps = make_steps([1, 8, 3, 8, 2], min_step_tokens=8)
    assert _spans(steps) == [(0, 9), (9, 22)]
    _assert_tiles(text, steps, 22)


def test_runs_of_short_steps_accumulate_until_long_enough():
    _, steps = make_steps([3, 3, 3, 9], min_step_tokens=8)
    assert _spans(steps) == [(0, 9), (9, 18)]


def test_trajectory_shorter_than_min_is_one_step_and_empty_is_no_step():
    _, steps = make_steps([2, 2], min_step_tokens=8)
    assert _spans(steps) == [(0, 4)]
    assert split_steps("", []) == []


def test_token_spanning_the_boundary_stays_with_the_earlier_step():
    tokens = ["a", "b.\n\nC", "d", "e"]
    _, steps = split_token_strings(tokens, min_step_tokens=1)
    assert _spans(steps) == [(0, 2), (2, 4)]


def test_zero_width_special_tokens_attach_to_the_previous_step():
    text, offsets = offsets_from_tokens(["a", ".\n\n", "b", "c"])
    offsets.append((0, 0))  # e.g. <|im_end|> from a tokenizer's offset mapping
    steps = split_steps(text, offsets, min_step_tokens=1)
    assert _spans(steps) == [(0, 2), (2, 5)]


def test_offsets_outside_the_text_are_rejected():
    with pytest.raises(ValueError, match="relative to the completion"):
        split_steps("abc", [(0, 1), (1, 9)])


def test_step_means_are_per_step_averages_and_check_length():
    _, steps = make_steps([2, 3])
    assert step_means([1.0, 3.0, 0.0, 0.0, 3.0], steps) == [2.0, 1.0]
    with pytest.raises(ValueError, match="cover 5 tokens"):
        step_means([1.0] * 4, steps)


def test_real_tokenizer_offsets(tmp_path):
    pytest.importorskip("transformers")
    from tests.fixtures.tiny_models import build_tokenizer

    tok = build_tokenizer(tmp_path)
    text = "Let me think step by step.\n\nSo 3 + 4 = 7.\n\nSo the final answer is \\boxed{7}."
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    steps = split_steps(text, enc["offset_mapping"], min_step_tokens=1)
    pieces = [text[s.char_start : s.char_end] for s in steps]
    assert pieces == [
        "Let me think step by step.\n\n",
        "So 3 + 4 = 7.\n\n",
        "So the final answer is \\boxed{7}.",
    ]
    _assert_tiles(text, steps, len(enc["input_ids"]))


def test_line_delimiter_splits_on_every_line_break():
    tokens = ["3", " + 4", " = 7", "\n", "7", " - 2", " = 5", "\n\n", "so", " 5"]
    _, blank = split_token_strings(tokens, min_step_tokens=1)
    text, lines = split_token_strings(tokens, min_step_tokens=1, delimiter="line")
    assert _spans(blank) == [(0, 8), (8, 10)]
    assert _spans(lines) == [(0, 4), (4, 8), (8, 10)]
    _assert_tiles(text, lines, len(tokens))


def test_unknown_delimiter_is_named():
    with pytest.raises(ValueError, match="unknown step delimiter 'tab'.*blank_line, line"):
        split_token_strings(["a"], delimiter="tab")
