"""Hand-made text signals of a prompt (`TextStats`): lengths, numbers, digits, operators, LaTeX
and question words; microseconds a prompt. The probes and the learned verifier both read them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ttc_agent.backends.base import Prompt, normalize_prompts


def prompt_text(prompt: Prompt) -> str:
    """The user-visible text of a prompt: a raw string, or the chat's non-system messages."""
    p = normalize_prompts(prompt)[0]
    if not p.is_chat:
        return p.text  # type: ignore[return-value]
    return "\n".join(m["content"] for m in p.messages if m["role"] != "system")


_NUM = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")  # 1,234.5; "10.1.5" reads as 10.1 and 5
_OPS = re.compile(r"[+\-*/×÷=^<>]")


class TextStats:
    """Hand-made text signals: lengths, numbers, digits, operators, LaTeX and question words."""

    name = "text_stats"
    columns = (
        "log_chars",
        "log_words",
        "numbers",
        "digits",
        "max_number_digits",
        "log_max_number",
        "operators",
        "plus",
        "times",
        "latex_commands",
        "sentences",
        "question_marks",
        "percent_or_money",
        "multiplicative_words",
    )
    dim = len(columns)

    def config(self) -> dict[str, Any]:
        return {"kind": self.name}

    def transform(self, prompts: Sequence[Prompt]) -> np.ndarray:
        return np.array([self._one(prompt_text(p)) for p in prompts], dtype=np.float64).reshape(len(prompts), self.dim)

    @staticmethod
    def _one(text: str) -> list[float]:
        numbers = _NUM.findall(text)
        values = [float(n.replace(",", "")) for n in numbers] or [0.0]
        digits = sum(ch.isdigit() for ch in text)
        lower = text.lower()
        return [
            math.log1p(len(text)),
            math.log1p(len(text.split())),
            len(numbers),
            digits,
            max((len(n.replace(",", "").split(".")[0]) for n in numbers), default=0),
            math.log1p(max(abs(v) for v in values)),
            len(_OPS.findall(text)),
            text.count("+"),
            text.count("*") + text.count("×"),
            text.count("\\"),
            max(1, len(re.findall(r"[.!?](\s|$)", text))),
            text.count("?"),
            text.count("%") + text.count("$"),
            sum(lower.count(w) for w in ("times", "each", "per", "twice", "half", "double", "every")),
        ]
