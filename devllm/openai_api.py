"""The OpenAI-compatible routes of the dev LLM server: ``GET /v1/models`` and
``POST /v1/chat/completions`` (one JSON object, or Server-Sent Events with ``"stream": true``),
as vLLM, llama.cpp's server and LM Studio answer them. Errors use OpenAI's shape:
``{"error": {"message", "type", "code"}}``. The model and its lock are the Ollama routes' own.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from devllm.model import Generation

OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "stop": "stop",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def error(handler, status: int, message: str, code: str = "invalid_request_error") -> None:
    handler._send_json(status, {"error": {"message": message, "type": code, "code": None}})


def models(handler) -> None:
    data = [
        {"id": name, "object": "model", "owned_by": "devllm", "created": 0}
        for name in handler.server.names
    ]
    handler._send_json(200, {"object": "list", "data": data})


def _format(body: dict[str, Any]) -> Any:
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    return None


def _include_usage(body: dict[str, Any]) -> bool:
    """``stream_options: {"include_usage": true}``: the client asks for a last usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_eval_count,
        "completion_tokens": generation.eval_count,
        "total_tokens": generation.prompt_eval_count + generation.eval_count,
    }


def chat_completions(handler, body: dict[str, Any], canonical_name) -> None:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        error(handler, 400, "model is required")
        return
    if canonical_name(name) not in handler.server.names:
        error(handler, 404, f"The model `{name}` does not exist", "model_not_found")
        return
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
    ):
        error(handler, 400, "messages must be a non-empty list of {role, content} objects")
        return
    options = {ours: body[theirs] for theirs, ours in OPTION_NAMES.items() if theirs in body}
    cleaned = [{"role": str(m.get("role", "user")), "content": m["content"]} for m in messages]
    completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    try:
        pieces = handler.server.model.chat(cleaned, options, _format(body))
        if not body.get("stream"):
            generation = next(p for p in pieces if isinstance(p, Generation))
            handler._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": generation.text},
                            "finish_reason": "length"
                            if generation.done_reason == "length"
                            else "stop",
                        }
                    ],
                    "usage": _usage(generation),
                },
            )
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for item in pieces:
            delta: dict[str, Any] = {} if isinstance(item, Generation) else {"content": item}
            finish = None
            if isinstance(item, Generation):
                finish = "length" if item.done_reason == "length" else "stop"
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            handler._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if isinstance(item, Generation) and _include_usage(body):
                # As OpenAI sends it: one more chunk, with no choices, after the finish_reason.
                chunk = {**chunk, "choices": [], "usage": _usage(item)}
                handler._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        handler._chunk(b"data: [DONE]\n\n")
        handler._chunk(b"")
    except ValueError as problem:  # llama.cpp: prompt longer than the context, bad grammar
        error(handler, 400, str(problem))
    except (BrokenPipeError, ConnectionResetError):
        pass
