"""`Cost`: what a call spent, the one type every layer shares (at the bottom: it imports no
other module of ttc-agent but the record shapes)."""

from __future__ import annotations

from dataclasses import dataclass

from ttc_agent.records import CostRecord


@dataclass(frozen=True)
class Cost:
    """What a strategy spent: exact tokens, sequential rounds and wall-clock seconds."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    verifier_tokens: int = 0
    rounds: int = 0
    seconds: float = 0.0
    verifier_seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt, completion and verifier tokens together."""
        return self.prompt_tokens + self.completion_tokens + self.verifier_tokens

    def as_dict(self) -> CostRecord:
        """Every field and the total, JSON-ready (seconds rounded to 0.1 ms)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "verifier_tokens": self.verifier_tokens,
            "total_tokens": self.total_tokens,
            "rounds": self.rounds,
            "seconds": round(self.seconds, 4),
            "verifier_seconds": round(self.verifier_seconds, 4),
        }

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.verifier_tokens + other.verifier_tokens,
            self.rounds + other.rounds,
            self.seconds + other.seconds,
            self.verifier_seconds + other.verifier_seconds,
        )
