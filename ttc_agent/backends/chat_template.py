"""Render prompts exactly as the model sees them, with a Hugging Face tokenizer.

The transformers and in-process vLLM backends share this, so both count the same prompt
tokens and continue partial assistant turns the same way.
"""

from __future__ import annotations

from typing import Any

from ttc_agent.backends.base import NormalizedPrompt, Prompt, normalize_prompts
from ttc_agent.errors import InvalidRequestError


class ChatTemplate:
    """Renders `NormalizedPrompt` objects to text and token ids with the model's own template."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise InvalidRequestError(
                f"tokenizer of {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; pass raw string prompts"
            )
        self.tokenizer = tokenizer

    def render(self, prompt: NormalizedPrompt) -> str:
        """The text the model is given: raw prompts as they are, chats through the template.

        A chat that ends with an assistant message is rendered open-ended
        (``continue_final_message``), so the model continues that message.
        """
        if not prompt.is_chat:
            return prompt.text  # type: ignore[return-value]
        cont = prompt.continues_assistant
        text: str = self.tokenizer.apply_chat_template(
            list(prompt.messages),
            tokenize=False,
            add_generation_prompt=not cont,
            continue_final_message=cont,
        )
        return text

    def encode(self, prompt: NormalizedPrompt) -> list[int]:
        """Token ids of the rendered prompt: the exact tokens the model reads."""
        # Chat templates already carry their special tokens; raw prompts get the tokenizer's.
        ids = self.tokenizer(self.render(prompt), add_special_tokens=not prompt.is_chat)["input_ids"]
        return list(ids)


class TemplatedBackend:
    """What a local backend that renders prompts through its model's chat template answers
    (mixed into `TransformersBackend` and `VLLMBackend`, which set ``template``)."""

    template: ChatTemplate

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads for ``prompt`` (chat template applied)."""
        return self.template.render(normalize_prompts(prompt)[0])

    def count_tokens(self, prompt: Prompt) -> int:
        """Number of tokens the model reads for ``prompt``."""
        return len(self.template.encode(normalize_prompts(prompt)[0]))
