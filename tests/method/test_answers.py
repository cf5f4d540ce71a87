from __future__ import annotations

import pytest

from heal_batch.method.answers import final_answer_char_span, final_answer_span
from heal_batch.method.steps import offsets_from_tokens


def _content(text, style="boxed"):
    span = final_answer_char_span(text, style)
    return None if span is None else text[span.start : span.end]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{1} then \\boxed{ 22 }", "22"),
        ("x = \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("set \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("no answer here", None),
        ("\\boxed{3} and a truncated \\boxed{4", "3"),  # the last complete box
        ("\\boxed{  }", ""),  # stated but blank: an empty span
        ("\\fbox {12}", "12"),
        ("\\boxed{6}\n#### 5", "6"),
    ],
)
def test_last_boxed_contents(text, expected):
    assert _content(text) == expected


def test_styles():
    text = "#### 5\n\\boxed{6}"
    assert [_content(text, s) for s in ("auto", "boxed", "gsm8k")] == ["6", "6", "5"]
    assert _content("#### 5", "boxed") is None
    with pytest.raises(ValueError, match="style 'last-number' is not one of"):
        final_answer_char_span("x", "last-number")


def test_token_span_covers_tokens_overlapping_the_answer():
    tokens = ["So", " \\boxed", "{1", "2", "}", "."]
    text, offsets = offsets_from_tokens(tokens)
    assert final_answer_span(text, offsets) == (2, 4)
    assert final_answer_span(text, [*offsets, (0, 0)]) == (2, 4)
    assert final_answer_span("none", [(0, 4)]) is None
    blank, blank_offsets = offsets_from_tokens(["\\boxed", "{}"])
    assert final_answer_span(blank, blank_offsets) is None  # a blank answer has no tokens


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("3 + 4 = 7\n#### 7", "7"),
        ("#### 12\nthen more text", "12"),
        ("first #### 1\nsecond #### 1,200  ", "1,200"),
        ("boxed wins \\boxed{3}\n#### 5", "3"),
        ("empty marker ####\n", ""),
        ("no answer at all", None),
    ],
)
def test_final_answer_falls_back_to_the_gsm8k_marker(text, answer):
    assert _content(text, "auto") == answer
