"""Problems to run strategies on: GSM8K and MATH-500 from disk, and a graded arithmetic task.

GSM8K and MATH-500 are read from the folder ``$TTC_AGENT_DATA`` names (holding ``gsm8k/`` and
``math500/``), or from a folder passed as ``data=``; nothing is downloaded. The arithmetic task
is generated and needs no data.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ttc_agent.answers import Extractor, Grader, Scope, answers_equal, extract_answer
from ttc_agent.errors import InvalidRequestError
from ttc_agent.validation import POSITIVE_INT, check_param

STEP_BY_STEP = "Solve it step by step, then give the final answer as 'The answer is N.'"


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer.

    ``level`` grades difficulty (1 = easiest); ``scope`` says where the answer sits in a model's
    reply (see `ttc_agent.answers.extract_answer`). ``extractor`` and ``grader`` replace the
    numeric answer reading and grading for another workload (text, code, multiple choice).
    """

    id: str
    question: str
    answer: str
    source: str
    level: int = 0
    scope: Scope = "all"
    instruction: str = ""
    extractor: Extractor | None = field(default=None, compare=False, repr=False)
    grader: Grader | None = field(default=None, compare=False, repr=False)

    def messages(self) -> list[dict[str, str]]:
        """The chat prompt for this problem."""
        content = f"{self.question}\n{self.instruction}" if self.instruction else self.question
        return [{"role": "user", "content": content}]

    def extract(self, text: str) -> str | None:
        """The answer stated in a model's reply to this problem."""
        if self.extractor is not None:
            answer = _called(self.extractor, "extractor", text)
            return None if answer is None else str(answer)
        return extract_answer(text, self.scope)

    def is_correct(self, answer: str | None) -> bool:
        """True when ``answer`` equals the gold answer."""
        if self.grader is not None:
            return bool(_called(self.grader, "grader", answer, self.answer))
        return answers_equal(answer, self.answer)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Problem:
        """The problem a trace record was made from (its prompt, gold answer and answer scope)."""
        users = [m["content"] for m in record["messages"] if m["role"] == "user"]
        source = record.get("dataset", "")
        scope: Scope = record.get("scope") or ("first_result" if source == "arithmetic" else "all")
        return cls(record["problem_id"], users[-1], str(record["gold"]), source, record.get("level", 0), scope)


def _called(fn: object, role: str, *args: object) -> object:
    """``fn(*args)``; a user's function that raises becomes an `InvalidRequestError` naming it."""
    try:
        return fn(*args)  # type: ignore[operator]
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise InvalidRequestError(f"the {role} {name} raised {type(exc).__name__}: {exc}") from exc


def _logged(path: Path, i: int, record: dict[str, Any]) -> Problem:
    """A problem from a decision log's record: the prompt the call was asked, no gold answer."""
    messages = record.get("messages")
    users = [m["content"] for m in messages or () if m.get("role") == "user"]
    if not users:
        raise InvalidRequestError(
            f"{path}: record {i} is a decision without its prompt; log with TTCEngine(record_prompts=True) "
            "(ttc-agent serve --record-prompts) to collect traces from the prompts your traffic sent"
        )
    return Problem(id=f"{path.stem}-{i}", question=users[-1], answer="", source=path.stem)


def with_workload(problems: list[Problem], extractor: Extractor | None, grader: Grader | None) -> list[Problem]:
    """``problems`` answered and graded by another workload's functions (``None``: the default)."""
    return [replace(p, extractor=extractor or p.extractor, grader=grader or p.grader) for p in problems]


def data_dir(data: str | Path | None = None) -> Path:
    """The folder holding ``gsm8k/`` and ``math500/``: ``data`` if given, else ``$TTC_AGENT_DATA``.

    Raises:
        InvalidRequestError: neither is set, or the folder has no ``gsm8k/`` (the message says what
            to set).
    """
    chosen = data if data is not None else os.environ.get("TTC_AGENT_DATA")
    if not chosen:
        raise InvalidRequestError(
            "GSM8K and MATH-500 are read from a local folder holding gsm8k/ and math500/: set TTC_AGENT_DATA "
            "to it (or pass --data / data=)"
        )
    folder = Path(chosen).expanduser()
    if not (folder / "gsm8k").is_dir():
        raise InvalidRequestError(
            f"the data folder {str(folder)!r} has no gsm8k/ folder; set TTC_AGENT_DATA to one that has"
        )
    return folder.resolve()


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise InvalidRequestError(f"no such data file: {path}")
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidRequestError(f"{path}:{n} is not valid JSON: {exc}") from exc


def load_gsm8k(split: str = "test", limit: int | None = None, data: str | Path | None = None) -> list[Problem]:
    """GSM8K problems (``split`` is ``"train"`` or ``"test"``); the gold answer follows ``####``."""
    if split not in ("train", "test"):
        raise InvalidRequestError(f"GSM8K split must be 'train' or 'test', got {split!r}")
    rows = _read_jsonl(data_dir(data) / "gsm8k" / f"{split}.jsonl")
    problems = [
        Problem(
            id=f"gsm8k-{split}-{i}",
            question=r["question"],
            answer=extract_answer(r["answer"]) or "",
            source="gsm8k",
            instruction=STEP_BY_STEP,
        )
        for i, r in enumerate(rows)
    ]
    return problems[:limit]


def load_math500(limit: int | None = None, data: str | Path | None = None) -> list[Problem]:
    """MATH-500 problems, with their difficulty level (1-5)."""
    rows = _read_jsonl(data_dir(data) / "math500" / "test.jsonl")
    problems = [
        Problem(
            id=r["unique_id"],
            question=r["problem"],
            answer=r["answer"],
            source="math500",
            level=int(r["level"]),
            instruction="Solve it step by step and put the final answer in \\boxed{}.",
        )
        for r in rows
    ]
    return problems[:limit]


#: One arithmetic level: an operation and the ranges its two operands are drawn from.
LevelSpec = tuple[str, tuple[int, int], tuple[int, int]]

# Difficulty levels of the arithmetic task, graded on SmolLM2-135M: (operation, range of a, range of b).
ARITHMETIC_LEVELS: dict[int, LevelSpec] = {
    1: ("+", (1, 9), (1, 9)),
    2: ("+", (10, 49), (10, 49)),
    3: ("+", (50, 999), (50, 999)),
    4: ("*", (11, 99), (3, 9)),
}

#: The arithmetic task's levels per model, graded by measuring greedy accuracy
#: (benchmarks/arithmetic_levels.py): on the reference model, 30 questions a level gave greedy
#: 0.83 (3-digit sums), 0.63 (4-digit sums), 0.33 (2-by-2-digit products) and 0.17
#: (3-by-2-digit products), against targets of about 0.9, 0.6, 0.3 and 0.1.
ARITHMETIC_GRADINGS: dict[str, dict[int, LevelSpec]] = {
    "smollm2-135m": ARITHMETIC_LEVELS,
    "qwen2.5-coder-0.5b": {
        1: ("+", (100, 999), (100, 999)),
        2: ("+", (1000, 9999), (1000, 9999)),
        3: ("*", (11, 99), (11, 99)),
        4: ("*", (100, 999), (11, 99)),
    },
}
#: Problem-id prefixes per grading (the SmolLM2 grading keeps the ids its traces have).
_ID_PREFIX = {"smollm2-135m": "arith", "qwen2.5-coder-0.5b": "arith-qwen"}


def level_problems(
    spec: LevelSpec, count: int, rng: random.Random, level: int = 0, prefix: str = "arith"
) -> list[Problem]:
    """``count`` distinct questions "What is a OP b?" with operands drawn by ``rng`` from
    ``spec``'s ranges."""
    op, (a_lo, a_hi), (b_lo, b_hi) = spec
    if op not in ("+", "*"):
        raise InvalidRequestError(f"an arithmetic level's operation must be '+' or '*', got {op!r}")
    room = (a_hi - a_lo + 1) * (b_hi - b_lo + 1)
    if count > room:
        raise InvalidRequestError(f"arithmetic level {level} has only {room} distinct questions, fewer than {count}")
    seen: set[tuple[int, int]] = set()
    problems = []
    while len(seen) < count:
        a, b = rng.randint(a_lo, a_hi), rng.randint(b_lo, b_hi)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        problems.append(
            Problem(
                id=f"{prefix}-l{level}-{a}{op}{b}",
                question=f"What is {a} {op} {b}?",
                answer=str(a + b if op == "+" else a * b),
                source="arithmetic",
                level=level,
                scope="first_result",
            )
        )
    return problems


def arithmetic(
    per_level: int = 20, levels: tuple[int, ...] = (1, 2, 3), seed: int = 0, grading: str = "smollm2-135m"
) -> list[Problem]:
    """A graded arithmetic task: ``per_level`` questions "What is a OP b?" at each level, with
    the levels ``grading`` names (`ARITHMETIC_GRADINGS`: levels graded for that model).

    For ``smollm2-135m``, level 1 adds one-digit numbers, level 2 two-digit numbers from 10 to
    49, level 3 numbers from 50 to 999, level 4 multiplies a two-digit by a one-digit number. For
    ``qwen2.5-coder-0.5b``, levels 1 and 2 add three- and four-digit numbers, levels 3 and 4
    multiply two-by-two and three-by-two-digit numbers.
    """
    check_param("per_level", per_level, POSITIVE_INT, owner="arithmetic")
    if grading not in ARITHMETIC_GRADINGS:
        raise InvalidRequestError(f"unknown arithmetic grading {grading!r}; known: {sorted(ARITHMETIC_GRADINGS)}")
    graded = ARITHMETIC_GRADINGS[grading]
    unknown = [lv for lv in levels if lv not in graded]
    if unknown:
        raise InvalidRequestError(f"unknown arithmetic level(s) {unknown}; known: {sorted(graded)}")
    # One random stream across the levels, as the traces collected so far were drawn.
    rng = random.Random(seed)
    problems = []
    for level in levels:
        problems += level_problems(graded[level], per_level, rng, level, prefix=_ID_PREFIX[grading])
    return problems


#: The datasets `load_dataset` knows by name (besides a path to a ``.jsonl`` file).
DATASETS = ("arithmetic", "gsm8k", "gsm8k-test", "gsm8k-train", "math500")


def load_dataset(
    name: str, limit: int | None = None, data: str | Path | None = None, **kwargs: int | str | tuple[int, ...]
) -> list[Problem]:
    """Problems by name: ``arithmetic``, ``gsm8k``, ``gsm8k-train``, ``math500`` (read from
    ``data`` or ``$TTC_AGENT_DATA``), or a JSONL file with ``question`` and ``answer`` fields."""
    if name == "arithmetic":
        return arithmetic(**kwargs)[:limit]  # type: ignore[arg-type]
    if name in ("gsm8k", "gsm8k-test"):
        return load_gsm8k("test", limit, data)
    if name == "gsm8k-train":
        return load_gsm8k("train", limit, data)
    if name == "math500":
        return load_math500(limit, data)
    path = Path(name)
    if path.suffix == ".jsonl":
        problems = []
        for i, r in enumerate(_read_jsonl(path)):
            if "question" not in r and ("candidates" in r or "choice" in r):  # a decision log's record
                problems.append(_logged(path, i, r))
                continue
            if "question" not in r or "answer" not in r:
                raise InvalidRequestError(f"{path}: row {i} needs 'question' and 'answer' fields, has {sorted(r)}")
            problems.append(
                Problem(
                    id=str(r.get("id", f"{path.stem}-{i}")),
                    question=r["question"],
                    answer=str(r["answer"]),
                    source=path.stem,
                    level=int(r.get("level", 0)),
                )
            )
        return problems[:limit]
    raise InvalidRequestError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} or a .jsonl file")
