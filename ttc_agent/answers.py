"""Final-answer extraction, normalisation and equivalence, for voting and grading.

``extract_answer`` looks, in order, for a GSM8K ``#### X`` line, the last ``\\boxed{X}``, the
last "answer is X" / "Answer: X", then a number. With ``scope="all"`` (step-by-step solutions)
that is the last number of the text. With ``scope="first_result"`` (short answers the model
then chats on about, like "49 + 26 equals 75, and that's the sum of 49 and 26") it is the first
number stated as a result (after ``=``, "equals", "is", "makes", "gives"), else the last number
of the first paragraph that has one. ``answer_key`` turns
an answer into a canonical string so equal numbers vote together (``"1,000"``, ``"1000.0"`` and
``"1000"`` are one key). ``answers_equal`` grades, with math-verify for LaTeX and fractions.

Another workload (text, code, multiple choice) brings its own: an ``Extractor`` (reply text ->
its answer, a canonical string so equal answers vote together) and a ``Grader`` (answer, gold ->
right?), given to `TTCEngine(extract=...)`, `Problem` and the CLI as ``module:function``
(`load_callable`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Literal

Scope = Literal["first_result", "all"]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
_GSM8K = re.compile(r"####\s*(.+)")
_ANSWER_IS = re.compile(r"(?:answer is|answer:)\s*:?\s*\$?\s*(" + _NUMBER + r"|[A-E]\b|\\?\S+)", re.IGNORECASE)
_NUMBER_RE = re.compile(_NUMBER)
_RESULT = re.compile(r"(?:=|\bequals\b|\bis\b|\bmakes\b|\bgives\b|\bresults in\b)\s*\$?(" + _NUMBER + ")")
_CHOICE = re.compile(r"\(?\b([A-E])\b\)?")


def extract_answer(text: str, scope: Scope = "all") -> str | None:
    """The final answer stated in ``text``, or ``None`` if it states none."""
    if not text or not text.strip():
        return None
    if m := _GSM8K.search(text):
        return _clean(m.group(1))
    if (boxed := last_boxed(text)) is not None:
        return _clean(boxed)
    if hits := _ANSWER_IS.findall(text):
        return _clean(hits[-1])
    if scope == "first_result":
        if m := _RESULT.search(text):
            return _clean(m.group(1))
        for paragraph in re.split(r"\n\s*\n", text):
            if numbers := _NUMBER_RE.findall(paragraph):
                return _clean(numbers[-1])
        return None
    numbers = _NUMBER_RE.findall(text)
    return _clean(numbers[-1]) if numbers else None


def extract_choice(text: str) -> str | None:
    """The last standalone choice letter A-E in ``text`` (for multiple-choice questions)."""
    hits = _CHOICE.findall(text or "")
    return hits[-1] if hits else None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def _clean(ans: str) -> str | None:
    ans = ans.strip().strip("$").strip()
    ans = re.sub(r"[.,;:!]+$", "", ans).strip()
    return ans or None


def as_number(ans: str) -> Fraction | None:
    """The exact value of a plain number, fraction or ``\\frac{a}{b}``; ``None`` otherwise."""
    s = ans.replace(",", "").replace(" ", "").replace("$", "").removesuffix("\\%").removesuffix("%")
    if m := re.fullmatch(r"\\d?frac\{(-?\d+)\}\{(-?\d+)\}", s):
        s = f"{m.group(1)}/{m.group(2)}"
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def answer_key(ans: str | None) -> str | None:
    """A canonical form of an answer, so equal answers vote together."""
    if ans is None:
        return None
    value = as_number(ans)
    if value is not None:
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return re.sub(r"\s+", "", ans).replace("\\left", "").replace("\\right", "").replace("\\!", "").lower()


def answers_equal(predicted: str | None, gold: str) -> bool:
    """True when ``predicted`` means the same as ``gold`` (numbers exactly, LaTeX via math-verify)."""
    if predicted is None:
        return False
    if answer_key(predicted) == answer_key(gold):
        return True
    a, b = as_number(predicted), as_number(gold)
    if a is not None and b is not None:
        return a == b
    from math_verify import parse, verify

    # No signal-based timeouts: grading may run in worker threads.
    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    pred_parsed = parse(f"${predicted}$", parsing_timeout=None)
    return bool(gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=None))


Extractor = Callable[[str], "str | None"]
Grader = Callable[["str | None", str], bool]


def load_callable(spec: str, what: str = "function") -> Callable[..., Any]:
    """The function ``spec`` names as ``module:function`` (``package.module:name``), imported;
    an `InvalidRequestError` names the spec when the module or the name is missing or the
    name is not callable."""
    import importlib

    from ttc_agent.errors import InvalidRequestError

    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise InvalidRequestError(f"a {what} is given as module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidRequestError(f"cannot import the {what} {spec!r}: {exc}") from None
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        raise InvalidRequestError(f"the {what} {spec!r} names nothing callable in {module_name}")
    loaded: Callable[..., Any] = fn
    return loaded
