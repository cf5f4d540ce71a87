import pytest

from heal_batch.method.grading import Grade, extract_answer, grade, last_boxed, verifier_version


@pytest.mark.parametrize(
    ("text", "style", "expected"),
    [
        ("so \\boxed{7}.", "auto", "7"),
        ("first \\boxed{3}, then \\boxed{\\frac{1}{2}}", "auto", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{2}}{2}} end", "boxed", "\\frac{\\sqrt{2}}{2}"),
        ("\\boxed{\\{1, 2\\} \\cup \\{3\\}}", "boxed", "\\{1, 2\\} \\cup \\{3\\}"),
        ("\\fbox{12}", "auto", "12"),
        ("\\boxed 5.", "auto", "5"),
        (
            "\\boxed{4} and then \\boxed{5",
            "auto",
            "4",
        ),  # the last box is cut off: take the last whole one
        ("Janet makes 9 * 2 = 18.\n#### 18", "gsm8k", "18"),
        ("#### 1,234,567.", "auto", "1234567"),
        ("#### $18", "auto", "18"),
        ("#### 5\n\\boxed{6}", "gsm8k", "5"),
        ("#### 5\n\\boxed{6}", "auto", "6"),
        ("The answer is 18.", "auto", None),  # never the last number of loose text
        ("\\boxed{18} only", "gsm8k", None),
        ("", "auto", None),
    ],
)
def test_extract_answer(text, style, expected):
    assert extract_answer(text, style) == expected


def test_extract_answer_rejects_unknown_style():
    with pytest.raises(ValueError, match="style"):
        extract_answer("\\boxed{1}", "last-number")


@pytest.mark.parametrize(
    ("text", "reference", "correct", "reason"),
    [
        ("We get \\boxed{\\frac{1}{2}}.", "0.5", True, "correct"),
        ("We get \\boxed{0.5}.", "\\frac{1}{2}", True, "correct"),
        ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", True, "correct"),
        ("\\boxed{90}", "90^\\circ", True, "correct"),
        ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", True, "correct"),
        ("\\boxed{4.5 \\times 10^{33}}", "4.5e33", True, "correct"),
        ("She makes 9 * 2 = $18 every day.\n#### 18", "18", True, "correct"),
        ("#### 70,000", "70000", True, "correct"),
        ("\\boxed{12 + 30 = 42}", "42", True, "correct"),
        ("\\boxed{17}", "18", False, "wrong_answer"),
        ("\\boxed{12 + 30 = 32}", "42", False, "wrong_answer"),
        ("\\boxed{\\frac{1}{3}}", "0.5", False, "wrong_answer"),
        ("So the answer is 18", "18", False, "no_answer"),
        ("\\boxed{}", "3", False, "unparseable"),
    ],
)
def test_grade(text, reference, correct, reason):
    g = grade(text, reference)
    assert (g.correct, g.reason) == (correct, reason)


def test_looping_text_is_no_answer_even_when_it_ends_in_the_right_number():
    looping = "20 * 10 = 200 pounds. " * 400 + "The answer is 6"
    assert grade(looping, "6") == Grade(False, "no_answer", None)
    truncated_box = "We compute. " * 50 + "\\boxed{6"
    assert grade(truncated_box, "6").reason == "no_answer"


def test_grade_never_raises_on_odd_output():
    odd = [
        None,
        12,
        "\\boxed{\\frac{1}{0}}",
        "\\boxed{{{{",
        "\\boxed{" + "(" * 500 + "}",
        "\\boxed{\\x\\y\\z}",
        "\x00\\boxed{1}",
    ]
    for text in odd:
        assert isinstance(grade(text, "1"), Grade)  # type: ignore[arg-type]
    assert grade("\\boxed{3}", "3", style="nope").reason == "unparseable"  # type: ignore[arg-type]


def test_nested_braces_and_version():
    assert last_boxed("x \\boxed{a_{b_{c}}} y") == "a_{b_{c}}"
    assert verifier_version().startswith("heal_batch.method.grading/2 math-verify==0.9")


@pytest.mark.parametrize(
    ("text", "reference", "correct"),
    [
        ("\\boxed{18 dollars}", "18", True),
        ("\\boxed{18\\text{ apples}}", "18", True),
        ("\\boxed{\\$18}", "18", True),
        ("\\boxed{4.5}", "4.5e33", False),  # a plain-number reading of 4.5e33 must not match 4.5
        ("\\boxed{5x}", "5", False),  # 5x is an expression, not 5 with a unit
        ("\\boxed{x = 42}", "42", True),
    ],
)
def test_units_and_scientific_notation(text, reference, correct):
    assert grade(text, reference).correct is correct
