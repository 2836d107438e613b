"""`PRMVerifier`: a process reward model (transformers) scoring each step of a solution.

Three scoring conventions cover the common open PRMs:

- ``"qwen"`` (Qwen2.5-Math-PRM): steps are joined and ended by the tag ``<extra_0>`` inside the
  model's chat template; a two-class head gives P(step correct) = softmax(logits)[1] at each tag.
- ``"math-shepherd"`` (Math-Shepherd): a causal LM reads ``question step1 ки\\nstep2 ки\\n...``;
  at each ``ки`` the step's score is softmax over the logits of the tokens ``+`` and ``-``.
- ``"value-head"`` (Skywork-PRM style): a one-output head; the step score is sigmoid(value) at
  the tag that ends each step.

Step scores are reduced to one score per solution by ``aggregate`` (``min``, ``last``, ``prod``
or ``mean``). All solutions go through one padded forward pass, counted as verifier tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

from ttc_agent.backends.base import Backend
from ttc_agent.errors import ModelLoadError
from ttc_agent.extras import needs_extra
from ttc_agent.verifiers.base import BaseVerifier, Scores, TokenLogprobs, VerifierError

CONVENTIONS = {
    "qwen": {"tag": "<extra_0>", "system": "Please reason step by step, and put your final answer within \\boxed{}."},
    "math-shepherd": {"tag": "ки", "good": "+", "bad": "-"},
    "value-head": {"tag": "<extra_0>"},
}
AGGREGATES = ("min", "last", "prod", "mean")


class PRMVerifier(BaseVerifier):
    """Scores partial and whole solutions with a process reward model from a local folder.

    Args:
        model: a local Hugging Face model folder.
        convention: ``"qwen"``, ``"math-shepherd"`` or ``"value-head"`` (see the module doc).
        aggregate: how step scores make a solution score.
        step_delimiter: what separates the steps in a solution (beam search's delimiter).
        trust_remote_code: needed for models with custom classes, such as Qwen2.5-Math-PRM.

    Example (a real PRM, once its weights are in a local folder):
        >>> prm = PRMVerifier("/models/Qwen2.5-Math-PRM-7B", convention="qwen", trust_remote_code=True)
        >>> BeamSearch(width=4, expand=4).run(question, backend, verifier=prm)
    """

    def __init__(
        self,
        model: str | Path,
        convention: str = "qwen",
        *,
        aggregate: str = "min",
        step_delimiter: str = "\n\n",
        trust_remote_code: bool = False,
    ) -> None:
        if convention not in CONVENTIONS:
            raise VerifierError(f"unknown PRM convention {convention!r}; expected one of {sorted(CONVENTIONS)}")
        if aggregate not in AGGREGATES:
            raise VerifierError(f"unknown aggregate {aggregate!r}; expected one of {AGGREGATES}")
        path = Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"no Hugging Face model folder (with config.json) at {str(model)!r}")
        with needs_extra("local", "PRMVerifier"):
            import torch
            from transformers import AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

        self.convention, self.aggregate, self.step_delimiter = convention, aggregate, step_delimiter
        self.name = f"prm:{path.name}"
        self._conv = CONVENTIONS[convention]
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        loader: type[AutoModelForCausalLM] | type[AutoModel] | type[AutoModelForTokenClassification]
        if convention == "math-shepherd":
            loader = AutoModelForCausalLM
        else:
            loader = AutoModel if trust_remote_code else AutoModelForTokenClassification
        try:
            self.model = loader.from_pretrained(path, dtype=torch.float32, trust_remote_code=trust_remote_code).eval()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"could not load the PRM at {str(path)!r}: {exc}") from exc
        self.tag_id = self._single_token(self._conv["tag"])
        if convention == "math-shepherd":
            self.good_id, self.bad_id = self._single_token("+"), self._single_token("-")

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ModelLoadError(
                f"the PRM's tokenizer splits {text!r} into {len(ids)} tokens; the {self.convention!r} convention needs one"
            )
        return int(ids[0])

    def steps(self, solution: str) -> list[str]:
        """The non-empty steps of a solution."""
        steps = [s.strip() for s in solution.split(self.step_delimiter)]
        return [s for s in steps if s] or [solution.strip() or "(empty)"]

    def format(self, question: str, solution: str) -> str:
        """The text the PRM reads: the solution's steps, each ended by the convention's tag."""
        tag, steps = self._conv["tag"], self.steps(solution)
        if self.convention == "math-shepherd":
            return f"{question} " + "".join(f"{s} {tag}\n" for s in steps)
        body = "".join(f"{s}{tag}" for s in steps)
        if getattr(self.tokenizer, "chat_template", None):
            messages = [
                {"role": "system", "content": self._conv.get("system", "")},
                {"role": "user", "content": question},
                {"role": "assistant", "content": body},
            ]
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False))
        return f"{question}\n{body}"

    def step_scores(self, question: str, solutions: Sequence[str]) -> tuple[list[list[float]], int]:
        """Per solution, the score of each step; and the number of tokens read."""
        import torch

        texts = [self.format(question, s) for s in solutions]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            logits = self.model(**batch).logits
        if isinstance(logits, tuple):
            logits = logits[0]
        if self.convention == "math-shepherd":
            pair = logits[..., [self.good_id, self.bad_id]]
            probs = torch.softmax(pair.float(), dim=-1)[..., 0]
        elif self.convention == "qwen":
            probs = torch.softmax(logits.float(), dim=-1)[..., 1]
        else:
            probs = torch.sigmoid(logits.float()[..., 0])
        out = []
        for i in range(len(texts)):
            at = (batch["input_ids"][i] == self.tag_id) & (batch["attention_mask"][i] == 1)
            out.append(probs[i][at].tolist())
        return out, int(batch["attention_mask"].sum())

    def score(
        self, question: str, solutions: Sequence[str], *, logprobs: TokenLogprobs = None, backend: Backend | None = None
    ) -> Scores:
        started = time.perf_counter()
        per_step, tokens = self.step_scores(question, solutions)
        values = []
        for i, steps in enumerate(per_step):
            if not steps:
                raise VerifierError(f"verifier {self.name!r} found no step tag in candidate {i}")
            values.append(_reduce(steps, self.aggregate))
        return Scores(tuple(values), tokens=tokens, seconds=time.perf_counter() - started)


def _reduce(steps: list[float], how: str) -> float:
    if how == "min":
        return min(steps)
    if how == "last":
        return steps[-1]
    if how == "prod":
        return math.prod(steps)
    return sum(steps) / len(steps)
