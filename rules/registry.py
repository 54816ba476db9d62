"""The tool registry: YAML tool definitions in folders, plus tools embedded in a workflow.

Both formats of the original project are read here and turned into one normalized form, the
form the bundle carries and the engine executes:

* ``{"kind": "llm", "model", "system_prompt", "prompt_template", "temperature", ...}``
* ``{"kind": "executable", "source": "<python code>", ...}``

Registries are layered: folders named with ``--tools`` first, then ``tools/`` beside the
workflow's folder, then ``./tools``, then the registry that ships with docker-workflow; the
first folder that has a tool id wins, so a project can override a built-in tool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules.errors import InvalidInput, Problem, json_path
from rules.jsonfile import load_yaml
from rules.schemas import schema_problems
from rules.spec import Workflow

BUILTIN_TOOLS = Path(__file__).resolve().parent.parent / "tools"
DEFAULT_MODEL = "llama3"
PYTHON_COMMANDS = {"python", "python3"}
LLM_KEYS = (
    "model",
    "endpoint",
    "system_prompt",
    "prompt_template",
    "temperature",
    "seed",
    "format",
    "options",
    "top_k",
    "top_p",
    "stop",
    "num_ctx",
    "num_predict",
)


@dataclass(frozen=True)
class ResolvedTool:
    """A normalized tool and where it came from (``origin`` is for people, not the bundle)."""

    id: str
    definition: dict[str, Any]
    origin: str

    @property
    def kind(self) -> str:
        return self.definition["kind"]


def default_model(option: str | None = None) -> str:
    """The model for LLM tools that name none: ``--model``, then ``OLLAMA_MODEL``, then llama3."""
    return option or os.environ.get("OLLAMA_MODEL") or DEFAULT_MODEL


def normalize_tool(
    tool_id: str, raw: Any, file: str, prefix: tuple[str | int, ...], base_dir: Path | None
) -> dict[str, Any]:
    """Turn a raw tool definition (either format) into the bundle form, or raise InvalidInput."""
    if not isinstance(raw, dict):
        raise InvalidInput.single(file, json_path(prefix), "a tool definition must be a mapping")
    problems = schema_problems(raw, "tool", file, prefix)
    if problems:
        raise InvalidInput(problems)
    common = {
        "id": tool_id,
        "timeout": raw.get("timeout"),
        "fallback_tool": raw.get("fallback_tool"),
    }
    if raw["type"] == "llm":
        block = {**raw, **(raw.get("llm") or {})}
        tool = {**common, "kind": "llm"}
        for key in LLM_KEYS:
            if block.get(key) is not None:
                tool[key] = block[key]
        if block.get("max_tokens") is not None:
            tool["num_predict"] = block["max_tokens"]
        return tool
    source = _executable_source(raw, file, prefix, base_dir)
    return {**common, "kind": "executable", "source": source}


def _executable_source(raw: dict, file: str, prefix: tuple, base_dir: Path | None) -> str:
    block = raw.get("executable") or {}
    where = json_path((*prefix, "executable"))
    if "code" in raw:
        return raw["code"]
    if "code" in block:
        return block["code"]
    script = block.get("script")
    args = list(block.get("args") or [])
    command = block.get("command", "python")
    if script is None:
        if os.path.basename(command) not in PYTHON_COMMANDS:
            raise InvalidInput.single(
                file,
                where,
                f"command {command!r} cannot run in a compiled image: only Python tools"
                " ('python -c CODE' or a .py script) are supported",
            )
        if len(args) >= 2 and args[0] == "-c":
            return args[1]
        if args and args[0].endswith(".py"):
            script = args[0]
        else:
            raise InvalidInput.single(
                file, where, "give 'code', 'script: NAME.py', or args ['-c', CODE] / ['NAME.py']"
            )
    if base_dir is None:
        raise InvalidInput.single(file, where, "an embedded tool must carry its code in 'code'")
    path = (base_dir / script).resolve()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput.single(
            file, where, f"cannot read script {script}: {error.strerror}"
        ) from None


class Registry:
    """Tool ids to YAML files over several folders; the first folder with an id wins."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots: list[Path] = []
        for root in roots:
            resolved = root.resolve()
            if resolved.is_dir() and resolved not in self.roots:
                self.roots.append(resolved)
        self._files: dict[str, Path] = {}
        for root in reversed(self.roots):  # earlier roots override later ones
            for path in sorted(root.rglob("*.y*ml")):
                if path.suffix in (".yaml", ".yml"):
                    self._files[path.stem] = path

    @classmethod
    def for_workflow(cls, workflow_path: Path, extra: list[Path] | None = None) -> Registry:
        """The layered registry a workflow sees (see the module docstring for the order)."""
        beside = workflow_path.resolve().parent.parent / "tools"
        return cls([*(extra or []), beside, Path.cwd() / "tools", BUILTIN_TOOLS])

    def ids(self) -> set[str]:
        return set(self._files)

    def file(self, tool_id: str) -> Path | None:
        return self._files.get(tool_id)

    def load(self, tool_id: str) -> ResolvedTool | None:
        path = self._files.get(tool_id)
        if path is None:
            return None
        definition = normalize_tool(tool_id, load_yaml(path), str(path), (), path.parent)
        return ResolvedTool(tool_id, definition, str(path))


def resolve_tools(
    workflow: Workflow, registry: Registry, model: str | None = None
) -> dict[str, ResolvedTool]:
    """Every tool the workflow's steps use, fallbacks included; nothing else (tree-shaking).

    Raises :class:`InvalidInput` naming each unknown or mismatched tool.
    """
    file = str(workflow.path)
    embedded = workflow.data.get("tools") or {}
    resolved: dict[str, ResolvedTool] = {}
    problems: list[Problem] = []

    def lookup(tool_id: str, where: tuple[str | int, ...]) -> ResolvedTool | None:
        if tool_id in resolved:
            return resolved[tool_id]
        try:
            if tool_id in embedded:
                definition = normalize_tool(
                    tool_id, embedded[tool_id], file, ("tools", tool_id), None
                )
                tool = ResolvedTool(tool_id, definition, "embedded")
            elif workflow.portable:
                problems.append(
                    Problem(
                        file,
                        json_path(where),
                        f"tool '{tool_id}' is not embedded in 'tools'; a portable workflow carries"
                        " its tools (docker-workflow export embeds registry tools)",
                    )
                )
                return None
            else:
                tool = registry.load(tool_id)
        except InvalidInput as error:
            problems.extend(error.problems)
            return None
        if tool is None:
            searched = ", ".join(str(root) for root in registry.roots) or "no registry folder"
            problems.append(
                Problem(file, json_path(where), f"unknown tool '{tool_id}' (searched {searched})")
            )
            return None
        if tool.kind == "llm" and not tool.definition.get("model"):
            tool = ResolvedTool(
                tool_id, {**tool.definition, "model": default_model(model)}, tool.origin
            )
        resolved[tool_id] = tool
        return tool

    for index, step in enumerate(workflow.steps):
        if "tool" not in step:
            continue
        tool = lookup(step["tool"], ("steps", index, "tool"))
        wanted = "llm" if step["type"] == "llm_call" else "executable"
        if tool is not None and tool.kind != wanted:
            problems.append(
                Problem(
                    file,
                    json_path(("steps", index, "tool")),
                    f"step type '{step['type']}' needs an {wanted} tool,"
                    f" but '{tool.id}' is {tool.kind}",
                )
            )
        # The engine falls back one level: the step's fallback_tool, else the tool's.
        if step.get("fallback_tool"):
            lookup(step["fallback_tool"], ("steps", index, "fallback_tool"))
        elif tool is not None and tool.definition.get("fallback_tool"):
            lookup(tool.definition["fallback_tool"], ("tools", tool.id, "fallback_tool"))
    if problems:
        raise InvalidInput(problems)
    return dict(sorted(resolved.items()))
