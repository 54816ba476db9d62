"""Pipeline step 2: tree-shake a workflow into a bundle, the only data the image carries.

The bundle holds the workflow's runtime fields and the normalized definitions of the tools its
steps use, nothing else: no other registry tool, no metadata such as ``created_at``. Its
sub-workflows travel in the same bundle under ``workflows``, each with its own tools, keyed by
``<id>@<content digest>`` (a child used twice is stored once). ``existing_tool`` steps become
``llm_call`` or ``python_tool`` steps after the kind of their tool, so the engine knows three
step kinds only. The bundle is canonical JSON (sorted keys, no spaces): equal content gives
equal bytes and an equal digest, which the image label and the build cache key on.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rules.stages.prepared import digest
from runner_template.bundle_format import BUNDLE_FORMAT, INPUT_KEYS, STEP_KEYS

if TYPE_CHECKING:
    from rules.files.registry import ResolvedTool
    from rules.files.subworkflows import WorkflowNode


def _step(step: dict[str, Any], tools: dict[str, ResolvedTool], child_key: str | None) -> dict:
    kept = {k: step[k] for k in STEP_KEYS if k in step}
    if step["type"] == "existing_tool":
        kind = tools[step["tool"]].kind
        kept["type"] = "llm_call" if kind == "llm" else "python_tool"
    if child_key is not None:
        kept["workflow"] = child_key
    return kept


def _part(
    node: WorkflowNode,
    tools_by_node: dict[int, dict[str, ResolvedTool]],
    children: dict[str, Any],
) -> dict[str, Any]:
    """``{"workflow", "tools"}`` of one node; its children are added to ``children``."""
    data = node.workflow.data
    tools = tools_by_node[id(node)]
    child_keys = {
        index: _add_child(child, tools_by_node, children) for index, child in node.children.items()
    }
    return {
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
            "steps": [
                _step(step, tools, child_keys.get(index))
                for index, step in enumerate(data["steps"])
            ],
        },
        "tools": {tool_id: tool.definition for tool_id, tool in sorted(tools.items())},
    }


def _add_child(node, tools_by_node, children) -> str:
    part = _part(node, tools_by_node, children)
    key = f"{part['workflow']['id']}@{digest(canonical_json(part))[7:19]}"
    children[key] = part
    return key


def shake(tree: WorkflowNode, tools_by_node: dict[int, dict[str, ResolvedTool]]) -> dict:
    """The bundle for the workflow tree, with exactly the tools ``analyze`` resolved."""
    children: dict[str, Any] = {}
    root = _part(tree, tools_by_node, children)
    bundle = {"format": BUNDLE_FORMAT, **root}
    if children:
        bundle["workflows"] = dict(sorted(children.items()))
    return bundle


def canonical_json(value: Any) -> bytes:
    """The one serialization used for hashing and for the bundle file."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
