"""The bundle's contract, written once: its file name, its format version, and the keys of a
step and of an LLM tool that the engine reads.

The build side (``rules/stages/shake.py``, ``rules/files/registry.py``) writes bundles from
these names and the engine (``main.load_bundle``, ``engine.py``) reads them, so a key the engine
honours cannot be dropped on the way in, and a bundle of a newer format is refused with a clear
error instead of being half understood. Standard library only: it is compiled into images.
"""

from __future__ import annotations

from typing import Any

BUNDLE_FILE = "bundle.json"
# 1: one workflow; 2: sub-workflows under "workflows". An engine reads every format up to its own.
BUNDLE_FORMAT = 2

STEP_KEYS = (
    "step_id",
    "type",
    "tool",
    "code",
    "prompt_template",
    "input_mapping",
    "output_name",
    "timeout",
    "deadline",
    "retry_on_failure",
    "max_retries",
    "parallel_group",
    "depends_on",
    "fallback_tool",
)
INPUT_KEYS = ("type", "required", "default", "description", "enum", "pattern")

# Sampling options an LLM tool may set; the engine passes each one to the LLM server.
LLM_OPTION_KEYS = (
    "temperature",
    "num_predict",
    "seed",
    "top_k",
    "top_p",
    "min_p",
    "stop",
    "num_ctx",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
)
# Every key of an LLM tool that the bundle carries.
LLM_KEYS = (
    "model",
    "endpoint",
    "provider",
    "api_key_env",
    "system_prompt",
    "prompt_template",
    "format",
    "options",
    *LLM_OPTION_KEYS,
)


def format_problem(bundle: Any) -> str | None:
    """Why this engine cannot read ``bundle``, or None when it can."""
    if not isinstance(bundle, dict):
        return f"it is a JSON {type(bundle).__name__}, not an object"
    found = bundle.get("format")
    if isinstance(found, bool) or not isinstance(found, int):
        return f"its format is {found!r}, not a version number"
    if not 1 <= found <= BUNDLE_FORMAT:
        return (
            f"it has format {found} and this engine reads formats 1 to {BUNDLE_FORMAT}: build"
            " the image again with the same docker-workflow version"
        )
    return None
