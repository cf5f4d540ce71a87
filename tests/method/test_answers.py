from __future__ import annotations

import pytest

from heal_batch.method.answers import boxed_answer_span, last_boxed_char_span
from heal_batch.method.steps import offsets_from_tokens


def _content(text):
    span = last_boxed_char_span(text)
    return None if span is None else text[span[0] : span[1]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{1} then \\boxed{ 22 }", "22"),
        ("x = \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("set \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("no answer here", None),
        ("\\boxed{3} and a truncated \\boxed{4", None),
        ("\\boxed{  }", None),
    ],
)
def test_last_boxed_contents(text, expected):
    assert _content(text) == expected


def test_token_span_covers_tokens_overlapping_the_answer():
    tokens = ["So", " \\boxed", "{1", "2", "}", "."]
    text, offsets = offsets_from_tokens(tokens)
    assert boxed_answer_span(text, offsets) == (2, 4)
    assert boxed_answer_span(text, [*offsets, (0, 0)]) == (2, 4)
    assert boxed_answer_span("none", [(0, 4)]) is None
