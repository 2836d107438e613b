"""The conversation as the model sees it: LangChain messages turned into chat messages, with
the tool instructions and a forced tool call's prefix when tools are offered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from ttc_agent.answers import Scope, extract_answer
from ttc_agent.errors import InvalidRequestError
from ttc_agent.nodes import tools as tooling
from ttc_agent.strategies import Query

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}

#: A message a face accepts: a LangChain message or a ``{"role", "content"}`` mapping.
MessageLike: TypeAlias = BaseMessage | Mapping[str, Any]
#: ``tool_choice`` as LangChain passes it: ``"auto"``, ``"any"``, ``"required"``, ``"none"``, a
#: tool's name, or an OpenAI-style ``{"type": "function", "function": {"name": ...}}``.
ToolChoice: TypeAlias = str | Mapping[str, Any] | None


def to_chat(messages: Sequence[MessageLike]) -> list[dict[str, str]]:
    """LangChain messages (or role/content dicts) as the backend's chat messages; past tool
    calls are written in the model's tool-call format, tool results as ``tool`` turns."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, BaseMessage):
            role = _ROLES.get(m.type)
            if role is None:
                raise InvalidRequestError(f"message {i} has type {m.type!r}, which the backend cannot read")
            content = str(m.text)
            if isinstance(m, AIMessage) and m.tool_calls:
                content += "".join(tooling.render_call(c["name"], c["args"]) for c in m.tool_calls)
            elif isinstance(m, ToolMessage):
                content = f"{m.name or 'tool'} returned: {content}"
            out.append({"role": role, "content": content})
        elif isinstance(m, Mapping) and "role" in m and "content" in m:
            out.append({"role": str(m["role"]), "content": str(m["content"])})
        else:
            raise InvalidRequestError(f"message {i} is not a chat message: {m!r}")
    return out


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation ready to run: the chat messages (tool instructions included), the names of
    the tools the reply may call, the start of the reply a forced ``tool_choice`` writes, and
    the prompt's length in the model's tokens (0 until a backend counted it)."""

    chat: list[dict[str, str]]
    tools: tuple[tooling.ToolSpec, ...] = ()
    prefix: str = ""
    tokens: int = 0

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names of the tools the reply may call."""
        return tuple(s.name for s in self.tools)

    def query(self, stop: tuple[str, ...] = (), scope: Scope = "all") -> Query:
        """The strategy's `Query`: the last user turn is the question verifiers see, a reply's
        answer is read at ``scope`` (see `ttc_agent.answers.extract_answer`), and with tools a
        reply is read as a tool call or else as an answer."""
        users = [m["content"] for m in self.chat if m["role"] == "user"]
        question = users[-1] if users else self.chat[-1]["content"]
        if not self.tools:
            return Query(prompt=self.chat, question=question, extract=partial(extract_answer, scope=scope), stop=stop)
        prompt = [*self.chat, {"role": "assistant", "content": self.prefix}] if self.prefix else self.chat
        # A call ends at its closing tag: no tokens are spent after it.
        stop = (*stop, tooling.CLOSE)
        extract = tooling.extractor(self.tools, self.prefix, scope)
        return Query(prompt=prompt, question=question, extract=extract, stop=stop)

    def message_fields(self, text: str, complete: bool = True) -> dict[str, Any]:
        """``AIMessage`` fields for a reply: its tool call when it makes one, else its text
        (``complete``: the reply ended by itself, not at a token limit or deadline)."""
        if self.tools:
            return tooling.tool_call_message_fields(self.prefix + text, self.tools, complete)
        return {"content": text}


def chat_prompt(
    messages: Sequence[MessageLike], tools: Sequence[Any] = (), tool_choice: ToolChoice = None
) -> ChatPrompt:
    """The `ChatPrompt` for ``messages``, offering ``tools`` (``tool_choice`` may force a call)."""
    if not messages:
        raise InvalidRequestError("there are no messages to answer")
    chat = to_chat(messages)
    if not tools or tool_choice == "none":
        return ChatPrompt(chat)
    specs = tooling.tool_specs(tools)
    text = tooling.instructions(specs)
    if chat[0]["role"] == "system":
        chat = [{"role": "system", "content": chat[0]["content"] + "\n\n" + text}, *chat[1:]]
    else:
        chat = [{"role": "system", "content": text}, *chat]
    return ChatPrompt(chat, tuple(specs), tooling.forced_prefix(specs, tool_choice))
