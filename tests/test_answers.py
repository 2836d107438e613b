"""Answer extraction, voting keys and grading."""

import pytest

from ttc_agent.answers import answer_key, answers_equal, extract_answer, extract_choice, last_boxed


@pytest.mark.parametrize(
    ("text", "scope", "expected"),
    [
        ("Natalia sold 48 clips.\n#### 72", "all", "72"),
        ("so x = \\boxed{\\frac{1}{2}}.", "all", "\\frac{1}{2}"),
        ("Step 1: 3 + 4 = 7. The answer is 1,200.", "all", "1,200"),
        ("Answer: 12", "all", "12"),
        ("18 + 28 = 36\n\nThis is a classic example with 5 facts.", "first_result", "36"),
        ("18 + 28 = 36\n\nThis is a classic example with 5 facts.", "all", "5"),
        ("To add 44 and 48: 44 + 48 equals 220.", "first_result", "220"),
        ("49 + 26 equals 74, and that's the result of adding 49 and 26", "first_result", "74"),
        ("To add 9 and 8, you simply add them: 9 + 8 = 17.", "first_result", "17"),
        ("Adding 9 and 8 we get 17 apples\n\nMore: 3", "first_result", "17"),
        ("I cannot say.", "all", None),
        ("", "all", None),
        ("The result is -3.5.", "all", "-3.5"),
    ],
)
def test_extract_answer(text, scope, expected):
    assert extract_answer(text, scope) == expected


def test_boxed_with_nested_braces_and_unclosed():
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{a}{b}} end") == "\\frac{a}{b}"
    assert last_boxed("\\boxed{open") is None


def test_choice_letter():
    assert extract_choice("I think (B) but really C") == "C"
    assert extract_choice("no letters here") is None


@pytest.mark.parametrize(("a", "b"), [("1,000", "1000"), ("1000.0", "1000"), ("\\frac{2}{4}", "1/2"), (" 42 ", "42")])
def test_equal_numbers_share_a_voting_key(a, b):
    assert answer_key(a) == answer_key(b)


@pytest.mark.parametrize(
    ("pred", "gold", "same"),
    [
        ("72", "72", True),
        ("72.0", "72", True),
        ("71", "72", False),
        (None, "72", False),
        ("\\frac{1}{2}", "0.5", True),
        ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
        ("x^2+1", "1+x^2", True),
        ("\\pi", "3", False),
    ],
)
def test_answers_equal(pred, gold, same):
    assert answers_equal(pred, gold) is same
