"""Tool calling for models without a native tool API (the embedded SmolLM2 among them).

The tools are described in the system message, and a call is written as
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``. A forced ``tool_choice``
("any", "required", or a tool's name) prefills the assistant's reply with the start of a call:
through ``"arguments": ``when the tool is known, and through its parameter's name when it has
only one, so even a small model only has to write the value.
Each sampled reply is reduced to a canonical key (the tool's name plus its arguments, or the
plain answer), so best-of-N's majority vote is a vote over tool calls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

from ttc_agent.answers import Scope, extract_answer
from ttc_agent.errors import InvalidRequestError

OPEN, CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: name, description and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


def tool_specs(tools: Sequence[Any]) -> list[ToolSpec]:
    """`ToolSpec` for LangChain tools, functions or OpenAI tool dicts."""
    specs = []
    for t in tools:
        fn = convert_to_openai_tool(t)["function"]
        specs.append(ToolSpec(fn["name"], fn.get("description", ""), fn.get("parameters", {})))
    return specs


def instructions(specs: Sequence[ToolSpec]) -> str:
    """The system-message text that describes each tool with the exact call that uses it
    (parameters as ``<type>`` placeholders, so a small model fills in values rather than
    copying a schema or a made-up name)."""
    lines = ["You can call these tools:"]
    for s in specs:
        args = ", ".join(f'"{k}": {_placeholder(v)}' for k, v in _properties(s).items())
        lines.append(f"- {s.name}: {s.description}".rstrip(": "))
        lines.append(f'  call it with {OPEN}{{"name": "{s.name}", "arguments": {{{args}}}}}{CLOSE}')
    lines.append("To call a tool, reply with its call only. Otherwise, answer the user directly.")
    return "\n".join(lines)


def forced_prefix(specs: Sequence[ToolSpec], tool_choice: Any) -> str:
    """The start of the reply that a ``tool_choice`` forces ("" when the model may choose):
    the call up to the tool's name when several tools qualify, else up to the first argument's
    value (or the closing brace of a tool without parameters)."""
    if tool_choice in (None, "auto", "none"):
        return ""
    if isinstance(tool_choice, Mapping):
        tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    names = [s.name for s in specs]
    if tool_choice in ("any", "required"):
        name = names[0] if len(names) == 1 else None
    elif tool_choice in names:
        name = tool_choice
    else:
        raise InvalidRequestError(f"tool_choice {tool_choice!r} names no tool; tools: {names}")
    if name is None:
        return OPEN + '{"name": "'
    prefix = f'{OPEN}{{"name": "{name}", "arguments": {{'
    params = _properties(specs[names.index(name)])
    if not params:
        return prefix + "}}"
    first, schema = next(iter(params.items()))
    return prefix + f'"{first}": ' + ('"' if schema.get("type") == "string" else "")


def parse_call(text: str, specs: Sequence[ToolSpec], repair: bool = True) -> dict[str, Any] | None:
    """The first well-formed call of a known tool in ``text`` (``{"name", "args"}``), or None;
    arguments the tool does not declare are dropped. With ``repair``, a call whose string or
    braces were left open (the reply stopped at ``</tool_call>``) is closed first; a reply cut
    off by a token limit is not repaired (its last value may be incomplete)."""
    start = text.find(OPEN)
    if start < 0:
        return None
    body = text[start + len(OPEN) :]
    end = body.find(CLOSE)
    body = body if end < 0 else body[:end]
    obj = _first_json_object(body) or (_first_json_object(_closed(body)) if repair else None)
    by_name = {s.name: s for s in specs}
    if not isinstance(obj, dict) or obj.get("name") not in by_name:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if not isinstance(args, dict):
        return None
    declared = _properties(by_name[obj["name"]])
    return {"name": obj["name"], "args": {k: v for k, v in args.items() if k in declared}}


def _placeholder(schema: dict[str, Any]) -> str:
    """A value's placeholder in a tool's example call: ``"<string>"`` (quoted), ``<integer>``..."""
    kind = schema.get("type", "value")
    return f'"<{kind}>"' if kind == "string" else f"<{kind}>"


def _properties(spec: ToolSpec) -> dict[str, Any]:
    properties = spec.parameters.get("properties", {})
    return properties if isinstance(properties, dict) else {}


def _closed(body: str) -> str:
    """``body`` with the string and braces it left open closed (a reply cut at its stop string,
    or closing its braces before the string it opened)."""
    text = body.rstrip().rstrip("}")
    if text.count('"') % 2:
        text += '"'
    return text + "}" * max(0, text.count("{") - text.count("}"))


def _first_json_object(text: str) -> Any:
    """Decode the first balanced ``{...}`` in ``text`` (trailing chatter ignored)."""
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            return obj
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def call_key(call: dict[str, Any]) -> str:
    """A canonical string for a call, so equal calls vote together."""
    args = {k: (v.replace(" ", "") if isinstance(v, str) else v) for k, v in call["args"].items()}
    return "call:" + json.dumps({"name": call["name"], "args": args}, sort_keys=True, separators=(",", ":"))


def extractor(specs: Sequence[ToolSpec], prefix: str, scope: Scope = "all") -> Callable[[str], str | None]:
    """Reads a sampled reply (after ``prefix``) as a tool-call key, or else as a plain answer
    stated at ``scope``."""

    def extract(text: str) -> str | None:
        call = parse_call(prefix + text, specs)
        return call_key(call) if call else extract_answer(text, scope)

    return extract


def tool_call_message_fields(text: str, specs: Sequence[ToolSpec], complete: bool = True) -> dict[str, Any]:
    """``AIMessage`` fields for a reply: its tool call, if it makes one, else its text
    (``complete``: the reply ended by itself, not at a token limit)."""
    call = parse_call(text, specs, repair=complete)
    if call is None:
        return {"content": text}
    return {
        "content": "",
        "tool_calls": [
            {"name": call["name"], "args": call["args"], "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}
        ],
    }


def render_call(name: str, args: dict[str, Any]) -> str:
    """A past tool call as the model writes one (for the conversation history)."""
    return f"{OPEN}{json.dumps({'name': name, 'arguments': args})}{CLOSE}"
