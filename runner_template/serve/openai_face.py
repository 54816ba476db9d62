"""The workflow as an OpenAI model: ``GET /v1/models``, ``POST /v1/chat/completions``.

So Open WebUI and every OpenAI SDK can call a workflow as if it were a model. The last user
message is the input: its text for a workflow with one string input (the one required, else the
only one), or a JSON object of inputs for any other. The reply is the single string output as
text, or the outputs object as JSON text. Streaming sends ``chat.completion.chunk`` objects as
Server-Sent Events, the text of the step behind the output as it arrives, then ``data: [DONE]``.
A reply's ``usage`` is the tokens of the run's LLM calls, summed as the LLM servers count them
(zeros for a workflow without LLM steps); a stream carries it, as OpenAI's does, in one last
chunk with no choices when asked (``stream_options: {"include_usage": true}``).
Errors are OpenAI's error objects (``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads


class FaceError(Exception):
    """A request the OpenAI face refuses: ``status`` and an OpenAI error ``code``."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def error_body(status: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    elif status == 429:
        kind = "rate_limit_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def models(workflow: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": model_id(workflow),
                "object": "model",
                "created": 0,
                "owned_by": "docker-workflow",
            }
        ],
    }


def model_id(workflow: dict[str, Any]) -> str:
    return str(workflow.get("id") or "workflow")


def text_input(workflow: dict[str, Any]) -> str | None:
    """The input that takes a chat message's text, or None (the message is a JSON object)."""
    declared = workflow.get("inputs") or {}
    strings = [n for n, s in declared.items() if s.get("type") in ("string", None, "any")]
    required = [n for n, s in declared.items() if s.get("required") and "default" not in s]
    if len(required) == 1 and required[0] in strings:
        return required[0]
    if len(declared) == 1 and strings:
        return strings[0]
    return None


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(texts)
    return None


class ChatRequest:
    """What a chat completion request asks: the workflow's inputs, whether to stream, and
    whether a stream ends with a usage chunk."""

    def __init__(self, inputs: Any, stream: bool, include_usage: bool) -> None:
        self.inputs, self.stream, self.include_usage = inputs, stream, include_usage


def _include_usage(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise FaceError(
            400,
            "stream_options is only allowed when stream is true",
            "invalid_value",
            "stream_options",
        )
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise FaceError(
            400,
            "stream_options must be an object whose include_usage is true or false",
            "invalid_type",
            "stream_options",
        )
    return options.get("include_usage", False)


def usage(tokens: list[int]) -> dict[str, int]:
    """OpenAI's usage object from a run's ``[tokens in, tokens out]``."""
    return {
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "total_tokens": tokens[0] + tokens[1],
    }


def chat_request(workflow: dict[str, Any], body: Any) -> ChatRequest:
    """The workflow's inputs and how to answer, from a chat completion request."""
    if not isinstance(body, dict):
        raise FaceError(400, "the body must be a JSON object", "invalid_request")
    model = body.get("model")
    if model is not None and model != model_id(workflow):
        raise FaceError(
            404,
            f"the model {str(model)[:100]!r} does not exist: this service is"
            f" {model_id(workflow)!r}",
            "model_not_found",
            "model",
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise FaceError(400, "stream must be true or false", "invalid_type", "stream")
    include_usage = _include_usage(body, stream)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FaceError(400, "messages must be a non-empty list", "invalid_type", "messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise FaceError(400, "there is no user message", "invalid_value", "messages")
    text = _message_text(users[-1].get("content"))
    if text is None:
        raise FaceError(400, "the last user message has no text", "invalid_value", "messages")
    name = text_input(workflow)
    if name is not None:
        return ChatRequest({name: text}, stream, include_usage)
    try:
        inputs = bounded_loads(text, text_checks=True)
    except (ValueError, JSONLimitError, RecursionError):
        inputs = None
    if not isinstance(inputs, dict):
        raise FaceError(
            400,
            "this workflow takes several inputs: send them as a JSON object in the user message",
            "invalid_value",
            "messages",
        )
    return ChatRequest(inputs, stream, include_usage)


def reply_text(workflow: dict[str, Any], outputs: dict[str, Any]) -> str:
    """The single string output as it is, anything else as JSON text."""
    if len(outputs) == 1:
        (value,) = outputs.values()
        if isinstance(value, str):
            return value
    return json.dumps(outputs, ensure_ascii=False)


def streamed_step(workflow: dict[str, Any]) -> str | None:
    """The step whose LLM text is the reply (its tokens are streamed), if there is one."""
    declared = workflow.get("outputs") or {}
    if len(declared) > 1:
        return None
    if declared:
        source = str(next(iter(declared.values())).get("source_reference", ""))
        parts = source.split(".")
        return parts[1] if len(parts) >= 2 and parts[0] == "steps" else None
    steps = workflow.get("steps") or []
    return steps[-1]["step_id"] if steps else None


class Completion:
    """The ids and timestamps one completion's objects share."""

    def __init__(self, workflow: dict[str, Any], include_usage: bool = False) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model_id(workflow)
        self.include_usage = include_usage  # a stream's chunks say "usage": null, the last has it

    def whole(self, text: str, tokens: list[int]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage(tokens),
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, tokens: list[int]) -> dict[str, Any]:
        """The last chunk before ``[DONE]`` when usage was asked for: no choices, the usage."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage(tokens),
        }
