"""The OpenAI wire format of ``ttc-agent serve``: the request it accepts, the completion and
stream chunks it answers with, and its errors (``{"error": {...}}`` with an HTTP status)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttc_agent.records import DecisionRecord


class APIError(Exception):
    """An error answered in OpenAI's format: HTTP ``status``, ``type``, ``code`` and ``param``."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
        param: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> dict[str, dict[str, str | None]]:
        """The JSON body OpenAI clients parse."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


class StreamOptions(BaseModel):
    """``stream_options``: whether the last chunk carries the usage."""

    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class SessionRequest(BaseModel):
    """A ``POST /v1/sessions`` body: a session's id and limits (for the OpenAPI schema; the
    service checks the fields and names a bad one)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="The session's id, sent as x-ttc-session.")
    max_tokens: int | None = Field(default=None, gt=0, description="Tokens the whole session may spend.")
    max_seconds: float | None = Field(default=None, gt=0, description="Seconds the whole session may spend.")
    expected_calls: int | None = Field(default=None, gt=0, description="Calls the session is expected to make.")
    on_exhausted: Literal["end", "error"] = Field(default="end", description="What a call past the budget gets.")


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """An endpoint's ``openapi_extra`` declaring ``model`` as its JSON body (for endpoints that
    read the raw body themselves, to bound its size), with the model's definitions inlined."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


class ChatRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body; ``ttc`` holds per-request settings (the fields of
    `TTCSettings`, sent through ``extra_body``).

    Every other field of OpenAI's request (``top_p``, ``seed``, penalties, ``logprobs``,
    ``metadata``, ``store``...) is kept in ``model_extra``: the engine decides sampling, so a
    lenient server ignores them and names them in the ``x-ttc-ignored`` header (as vLLM and
    optillm accept them), and a ``--strict`` one refuses them (`check_strict`).
    """

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = None
    n: int = 1
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    ttc: dict[str, Any] | None = None

    def schema_tool(self) -> dict[str, Any] | None:
        """``response_format={"type": "json_schema", ...}`` as the tool the structured-output
        path forces (the reply's arguments become the message's JSON content); ``None`` for no
        schema (``text``, ``json_object``, or none given)."""
        rf = self.response_format or {}
        if rf.get("type") != "json_schema":
            return None
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise APIError(400, "response_format json_schema needs a 'json_schema' object with a 'schema'",
                           param="response_format")  # fmt: skip
        name = str(spec.get("name") or "answer")
        return {"type": "function", "function": {"name": name, "description": spec.get("description", ""),
                                                 "parameters": spec["schema"]}}  # fmt: skip

    def ignored(self) -> list[str]:
        """The fields this request sets that the engine decides instead (a lenient server's
        ``x-ttc-ignored`` header): every field outside the ones read, a temperature other than
        0, and a ``response_format`` with no schema."""
        out = sorted(self.model_extra or {})
        if self.temperature not in (None, 0):
            out.append("temperature")
        if self.response_format is not None and self.response_format.get("type") != "json_schema":
            out.append("response_format")
        return out

    def check_strict(self) -> None:
        """A ``--strict`` server's refusals: a field the engine cannot honour is a 400, not ignored."""
        extra = sorted(self.model_extra or {})
        if extra:
            raise APIError(400, f"unknown field {extra[0]!r} (this server is --strict; a lenient one ignores it)",
                           param=extra[0])  # fmt: skip
        if self.temperature not in (None, 0):
            raise APIError(
                400,
                f"temperature must be 0 (greedy strategies only) or left out, got {self.temperature}: the probes "
                "predict each strategy at its menu's temperature",
                param="temperature",
            )

    def lc_messages(self) -> list[BaseMessage]:
        """The conversation as LangChain messages (a malformed message is a 400)."""
        try:
            return convert_to_messages(self.messages)
        except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
            raise APIError(400, f"messages: {exc}", param="messages") from None

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


def json_object(body: bytes) -> dict[str, Any]:
    """A request body's JSON object, or a 400 saying why it is not one."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise APIError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def parse_request(body: bytes) -> ChatRequest:
    """The request, or a 400 naming what is malformed or unknown."""
    try:
        return ChatRequest.model_validate(json_object(body))
    except ValidationError as exc:
        raise APIError(400, describe(exc), param=_first_field(exc)) from None


def describe(exc: ValidationError) -> str:
    """A validation error as one line naming each bad field (unknown ones as such)."""
    parts = []
    for e in exc.errors():
        field = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"unknown field {field!r}" if e["type"] == "extra_forbidden" else f"{field}: {e['msg']}")
    return "; ".join(parts)


def _first_field(exc: ValidationError) -> str | None:
    errors = exc.errors()
    return ".".join(str(p) for p in errors[0]["loc"]) if errors else None


def _tool_calls(message: AIMessage) -> list[dict[str, Any]]:
    return [
        {
            "id": c.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
        }
        for c in message.tool_calls
    ]


def _usage(message: AIMessage) -> dict[str, int]:
    u = message.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": u["input_tokens"],
        "completion_tokens": u["output_tokens"],
        "total_tokens": u["total_tokens"],
    }


def _finish(message: AIMessage) -> str:
    return "tool_calls" if message.tool_calls else str(message.response_metadata.get("finish_reason", "stop"))


def completion(message: AIMessage, model: str, ttc: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` object for the reply, with OpenAI ``usage`` and the ``ttc`` record."""
    body: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        body["tool_calls"] = _tool_calls(message)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": body, "finish_reason": _finish(message), "logprobs": None}],
        "usage": _usage(message),
        "ttc": ttc,
    }


def chunks(
    message: AIMessage, first: dict[str, Any], ttc: dict[str, Any], include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The reply as ``chat.completion.chunk`` objects after the ``first`` (role) chunk, with its
    id, creation time and model, as OpenAI streams share them: the content (or the tool calls),
    the finish reason with the ``ttc`` record, and the usage if asked."""
    cid, created, model = first["id"], first["created"], first["model"]

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **extra}  # fmt: skip

    if message.tool_calls:
        yield chunk({"tool_calls": [{"index": i, **c} for i, c in enumerate(_tool_calls(message))]})
    elif message.text:
        yield chunk({"content": message.text})
    yield chunk({}, _finish(message), ttc=ttc)
    if include_usage:
        yield {**chunk({}), "choices": [], "usage": _usage(message)}


def role_chunk(model: str) -> dict[str, Any]:
    """The first chunk of a stream, sent before the strategy has run."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    }


def ttc_object(record: DecisionRecord, session: dict[str, Any] | None) -> dict[str, Any]:
    """The response's ``ttc`` object: the decision record, and the session's balance."""
    out: dict[str, Any] = dict(record)
    if session is not None:
        out["session"] = session
    return out
