"""Pipeline step 2: tree-shake a workflow into a bundle, the only data the image carries.

The bundle holds the workflow's runtime fields and the normalized definitions of the tools its
steps use, nothing else: no other registry tool, no metadata such as ``created_at``. It is
written as canonical JSON (sorted keys, no spaces), so equal content gives equal bytes and an
equal digest, which the image label and the build cache key on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rules.registry import ResolvedTool
from rules.spec import Workflow

BUNDLE_FORMAT = 1
STEP_KEYS = (
    "step_id",
    "type",
    "tool",
    "code",
    "prompt_template",
    "input_mapping",
    "output_name",
    "timeout",
    "retry_on_failure",
    "max_retries",
    "parallel_group",
    "depends_on",
    "fallback_tool",
)
INPUT_KEYS = ("type", "required", "default", "description", "enum", "pattern")


def shake(workflow: Workflow, tools: dict[str, ResolvedTool]) -> dict[str, Any]:
    """The bundle for ``workflow`` with exactly ``tools`` (from ``analyze``)."""
    data = workflow.data
    return {
        "format": BUNDLE_FORMAT,
        "workflow": {
            "id": data["workflow_id"],
            "version": data.get("version"),
            "description": data.get("description"),
            "inputs": {
                name: {k: spec[k] for k in INPUT_KEYS if k in spec}
                for name, spec in (data.get("inputs") or {}).items()
            },
            "outputs": {
                name: {"source_reference": spec["source_reference"]}
                for name, spec in (data.get("outputs") or {}).items()
            },
            "steps": [{k: step[k] for k in STEP_KEYS if k in step} for step in data["steps"]],
        },
        "tools": {tool_id: tool.definition for tool_id, tool in sorted(tools.items())},
    }


def canonical_json(value: Any) -> bytes:
    """The one serialization used for hashing and for the bundle file."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
