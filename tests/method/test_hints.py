from __future__ import annotations

import pytest

from heal_batch.method.hints import (
    answer_guided_prompt,
    build_hint,
    find_leak,
    hint_prefill,
    strip_hint,
    strip_hint_with_cut,
)


def test_hint_names_the_answer_and_keeps_latex_braces():
    hint = build_hint("\\frac{1}{2}")
    assert hint.startswith("\n\nWait.") and hint.endswith("\n\n")
    assert hint.count("\\frac{1}{2}") == 2
    assert build_hint("7", "{x} -> {answer}") == "{x} -> 7"
    with pytest.raises(ValueError, match=r"hint_template.*\{answer\}"):
        build_hint("7", "no placeholder")


def test_answer_guided_prompt_starts_with_the_problem_then_the_answer():
    prompt = answer_guided_prompt("What is 3+4?", "7")
    assert prompt.startswith("What is 3+4?\n\n")
    assert "the correct final answer is 7" in prompt and "\\boxed{}" in prompt
    with pytest.raises(ValueError, match=r"\{problem\}"):
        answer_guided_prompt("p", "a", "only {answer}")


@pytest.mark.parametrize(
    ("prefix", "continuation", "expected"),
    [
        ("Step one.\n\n", "So the answer is 42.", "Step one.\n\nSo the answer is 42."),
        ("Step one.", "  \nSo 42.", "Step one.\n\nSo 42."),
        ("", "So 42.", "So 42."),
        ("   \n\n", "So 42.", "So 42."),
        ("Step one.\n\n", "", "Step one."),
    ],
)
def test_strip_round_trip(prefix, continuation, expected):
    hint = build_hint("42")
    stitched = hint_prefill(prefix, hint) + continuation
    assert "Hindsight" in stitched
    assert strip_hint(stitched, hint) == expected


@pytest.mark.parametrize(
    ("prefix", "continuation", "cut"),
    [("Step one.\n\n", "So 42.", len("Step one.\n\n")), ("", "So 42.", 0), ("A.", "", 2)],
)
def test_cut_index_points_at_the_continuation(prefix, continuation, cut):
    hint = build_hint("42")
    text, at = strip_hint_with_cut(hint_prefill(prefix, hint) + continuation, hint)
    assert at == cut and text[at:] == continuation


def test_prefill_at_token_zero_has_no_leading_blank_lines():
    assert hint_prefill("", build_hint("1")).startswith("Wait.")


def test_hint_without_surrounding_whitespace_is_removed_exactly():
    assert strip_hint("a [H] b", "[H]") == "a  b"


def test_only_the_injected_first_copy_is_removed_and_a_repeat_is_a_leak():
    hint = build_hint("5")
    stitched = hint_prefill("A.\n\n", hint) + "Hindsight: the correct final answer is 5. Done."
    stripped = strip_hint(stitched, hint)
    assert stripped == "A.\n\nHindsight: the correct final answer is 5. Done."
    assert find_leak(stripped[len("A.\n\n") :]) == "hindsight"


def test_missing_hint_is_an_error():
    with pytest.raises(ValueError, match="not found"):
        strip_hint("no hint here", build_hint("3"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Using the hint, x = 3.", "hint"),
        ("HINDSIGHT says 3", "hindsight"),
        ("We\nare   told that x is 3", "we are told"),
        ("so the Correct Final Answer is 3", "the correct final answer is"),
        ("As the hints suggest", "hints"),
        ("I keep thinking; hinting is not a word here", None),
        ("Let x = 3. Then 2x = 6, so the answer is \\boxed{6}.", None),
        ("We are told x > 0. Then, per the hint, 3.", "we are told"),
    ],
)
def test_find_leak(text, expected):
    assert find_leak(text) == expected


def test_leak_phrases_are_configurable():
    assert find_leak("the oracle says 3", ("oracle",)) == "oracle"
    assert find_leak("using the hint", ("oracle",)) is None
