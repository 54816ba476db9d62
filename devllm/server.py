"""The Ollama HTTP API (the parts workflows use) over :class:`devllm.model.TinyModel`.

Endpoints: ``GET /api/tags``, ``GET /api/version``, ``POST /api/show``, ``POST /api/generate``,
``POST /api/chat``, and the OpenAI-compatible ``GET /v1/models`` and
``POST /v1/chat/completions`` (``devllm/openai_api.py``). Streaming is NDJSON as in Ollama (the
default), ``"stream": false`` gives one object. Errors are ``{"error": "..."}`` with 400 for bad
requests and 404 for unknown models. ``--cors ORIGIN`` (else ``OLLAMA_ORIGINS``, as Ollama reads
it) lets pages of those origins call it from a browser: preflights answered, and
``Access-Control-Allow-Origin`` on every answer to an allowed origin.
Reference: docs/api.md in the ollama/ollama repository.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devllm import openai_api
from devllm.model import Generation, TinyModel

VERSION = "0.5.0-devllm"
DEFAULT_NAMES = ("llama3", "smollm2:135m")


def canonical_name(name: str) -> str:
    """Ollama's naming: a model without a tag is ``:latest``."""
    return name if ":" in name else f"{name}:latest"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class OllamaHandler(BaseHTTPRequestHandler):
    """One request; the server object carries the model and the names it answers to."""

    server: DevLLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"devllm: {self.address_string()} {format % args}\n")

    # -- plumbing ---------------------------------------------------------------------------

    def end_headers(self) -> None:
        """Every answer says which browser origins may read it (``--cors``), as Ollama does."""
        origin = self.headers.get("Origin")
        if origin and self.server.allows_origin(origin):
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
        super().end_headers()

    def do_OPTIONS(self) -> None:
        """A browser's preflight before a JSON POST from another origin."""
        origin = self.headers.get("Origin") or ""
        if not self.server.allows_origin(origin):
            self._error(403, f"origin {origin!r} is not allowed: start llm-server --cors ORIGIN")
            return
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as error:
            self._error(400, f"invalid JSON body: {error}")
            return None
        if not isinstance(body, dict):
            self._error(400, "the request body must be a JSON object")
            return None
        return body

    def _model_name(self, body: dict[str, Any]) -> str | None:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            self._error(400, "model is required")
            return None
        if canonical_name(name) not in self.server.names:
            self._error(404, f"model '{name}' not found")
            return None
        return name

    # -- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path == "/api/tags":
            self._send_json(200, {"models": [self.server.describe(n) for n in self.server.names]})
        elif self.path == "/api/version":
            self._send_json(200, {"version": VERSION})
        elif self.path == "/v1/models":
            openai_api.models(self)
        elif self.path == "/":
            body = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._error(404, "404 page not found")

    def do_POST(self) -> None:
        body = self._read_json()
        if body is None:
            return
        if self.path == "/api/show":
            name = self._model_name(body)
            if name:
                self._send_json(200, self.server.show(name))
        elif self.path == "/api/generate":
            self._generate(body)
        elif self.path == "/api/chat":
            self._chat(body)
        elif self.path == "/v1/chat/completions":
            openai_api.chat_completions(self, body, canonical_name)
        else:
            self._error(404, "404 page not found")

    def _options(self, body: dict[str, Any]) -> dict[str, Any] | None:
        options = body.get("options") or {}
        if not isinstance(options, dict):
            self._error(400, "options must be an object")
            return None
        return options

    def _generate(self, body: dict[str, Any]) -> None:
        name = self._model_name(body)
        options = self._options(body) if name else None
        if name is None or options is None:
            return
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            self._error(400, "prompt must be a string")
            return
        messages = []
        if body.get("system"):
            messages.append({"role": "system", "content": str(body["system"])})
        if not prompt:  # Ollama answers an empty prompt by loading the model, with no text
            self._send_json(200, self._final(name, "", None, "load", chat=False))
            return
        messages.append({"role": "user", "content": prompt})
        self._run(name, messages, options, body, chat=False)

    def _chat(self, body: dict[str, Any]) -> None:
        name = self._model_name(body)
        options = self._options(body) if name else None
        if name is None or options is None:
            return
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages
        ):
            self._error(400, "messages must be a list of {role, content} objects")
            return
        cleaned = [
            {"role": str(m.get("role", "user")), "content": m.get("content", "")} for m in messages
        ]
        self._run(name, cleaned, options, body, chat=True)

    def _final(self, name: str, text: str, gen: Generation | None, reason: str, chat: bool) -> dict:
        reply: dict[str, Any] = {"model": name, "created_at": _now()}
        if chat:
            reply["message"] = {"role": "assistant", "content": text}
        else:
            reply["response"] = text
        reply.update({"done": True, "done_reason": gen.done_reason if gen else reason})
        if gen is not None:
            reply.update(
                total_duration=gen.total_duration,
                load_duration=gen.load_duration,
                prompt_eval_count=gen.prompt_eval_count,
                eval_count=gen.eval_count,
            )
        if not chat:
            reply["context"] = []
        return reply

    def _run(self, name: str, messages, options, body: dict[str, Any], chat: bool) -> None:
        stream = body.get("stream", True) is not False
        try:
            pieces = self.server.model.chat(messages, options, body.get("format"))
            if not stream:
                generation = None
                for item in pieces:
                    if isinstance(item, Generation):
                        generation = item
                self._send_json(200, self._final(name, generation.text, generation, "stop", chat))
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for item in pieces:
                if isinstance(item, Generation):
                    line = self._final(name, "", item, "stop", chat)
                elif chat:
                    line = {
                        "model": name,
                        "created_at": _now(),
                        "message": {"role": "assistant", "content": item},
                        "done": False,
                    }
                else:
                    line = {"model": name, "created_at": _now(), "response": item, "done": False}
                self._chunk(json.dumps(line).encode("utf-8") + b"\n")
            self._chunk(b"")
        except ValueError as error:  # llama.cpp: prompt longer than the context, bad grammar
            self._error(400, str(error))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; nothing to answer

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class DevLLMServer(ThreadingHTTPServer):
    """Threads accept requests; the model's lock keeps generation one at a time."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        model: TinyModel,
        names: list[str],
        verbose=False,
        cors: list[str] | None = None,
    ):
        super().__init__(address, OllamaHandler)
        self.model = model
        self.names = [canonical_name(n) for n in names]
        self.verbose = verbose
        self.modified_at = _now()
        self.cors = list(cors or [])

    def allows_origin(self, origin: str) -> bool:
        """``origin`` matches a ``--cors`` pattern (``*`` and ``http://127.0.0.1:*`` work)."""
        return bool(origin) and any(fnmatch.fnmatchcase(origin, p) for p in self.cors)

    def describe(self, name: str) -> dict[str, Any]:
        size = self.model.path.stat().st_size
        return {
            "name": name,
            "model": name,
            "modified_at": self.modified_at,
            "size": size,
            "digest": "devllm-" + self.model.path.name,
            "details": {
                "format": "gguf",
                "family": "llama",
                "parameter_size": "135M",
                "quantization_level": "Q4_1",
            },
        }

    def show(self, name: str) -> dict[str, Any]:
        return {
            "modelfile": f"FROM {self.model.path}",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": self.describe(canonical_name(name))["details"],
            "model_info": {"general.architecture": "llama"},
        }


def cors_origins(given: list[str] | None) -> list[str]:
    """``--cors`` origins, else Ollama's own ``OLLAMA_ORIGINS`` (comma-separated), else none."""
    if given:
        return list(given)
    return [o.strip() for o in os.environ.get("OLLAMA_ORIGINS", "").split(",") if o.strip()]


def serve(
    host: str, port: int, names: list[str], verbose: bool = False, cors: list[str] | None = None
) -> None:
    """Load the model, bind, print the address, serve until interrupted."""
    model = TinyModel()
    origins = cors_origins(cors)
    server = DevLLMServer((host, port), model, names or list(DEFAULT_NAMES), verbose, origins)
    bound_host, bound_port = server.server_address[:2]
    print(
        f"devllm: development server (not for production), model {model.path.name} as"
        f" {', '.join(server.names)}",
        file=sys.stderr,
    )
    print(f"listening on http://{bound_host}:{bound_port}", flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
