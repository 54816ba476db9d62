"""The tool registry: YAML tool definitions in folders, plus tools embedded in a workflow.

Every format of the original project is read here and turned into one normalized form, the
form the bundle carries and the engine executes:

* ``{"kind": "llm", "model", "system_prompt", "prompt_template", "temperature", ...}``
* ``{"kind": "executable", "source": "<python code>", ...}``
* ``{"kind": "api", "api_spec": {"method", "url", "headers", "body"}, ...}``

Inputs: registry YAML (``llm:`` and ``executable:`` blocks), and the original's embedded
``ToolDefinition`` (``type`` llm/python/executable/api, ``source_code``, ``requirements``,
``api_spec``, ``retry_on_failure``, ...). ``requirements`` (pip requirement strings) are kept
beside the definition, not in it: they decide the compiled engine, not the bundle.

Registries are layered: folders named with ``--tools`` first, then ``tools/`` beside the
workflow's folder, then ``./tools``, then the registry that ships with docker-workflow; the
first folder that has a tool id wins, so a project can override a built-in tool.

A tool's ``script:`` is read from its registry folder only: relative, no ``..``, a regular
file under a size limit. Nothing outside the registry ends up in a bundle or an export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rules.errors import InvalidInput, Problem, json_path
from rules.files.jsonfile import load_yaml, read_text
from rules.files.schemas import schema_problems
from rules.fsutil import BadPath, resolve_name
from runner_template.bundle_format import LLM_KEYS

if TYPE_CHECKING:
    from rules.files.spec import Workflow

DEFAULT_MODEL = "llama3"
PYTHON_COMMANDS = {"python", "python3"}
MAX_SCRIPT_BYTES = 1024 * 1024
KINDS = {"llm": "llm", "executable": "executable", "python": "executable", "api": "api"}


def builtin_tools_dir() -> Path:
    """The registry that ships with docker-workflow (package ``docker_workflow_tools``)."""
    try:
        import docker_workflow_tools
    except ImportError:  # running from a source tree that was never installed
        return Path(__file__).resolve().parents[2] / "tools"
    return Path(docker_workflow_tools.__file__).resolve().parent


BUILTIN_TOOLS = builtin_tools_dir()


@dataclass(frozen=True)
class ResolvedTool:
    """A normalized tool and where it came from (``origin`` is for people, not the bundle)."""

    id: str
    definition: dict[str, Any]
    origin: str
    requirements: tuple[str, ...] = field(default=())

    @property
    def kind(self) -> str:
        return self.definition["kind"]


def default_model(option: str | None = None) -> str:
    """The model for LLM tools that name none: ``--model``, then ``OLLAMA_MODEL``, then llama3."""
    return option or os.environ.get("OLLAMA_MODEL") or DEFAULT_MODEL


def _check_url(url: Any, file: str, where: tuple, what: str) -> None:
    """No credentials in URLs: they would be baked into the bundle (and the image)."""
    if not isinstance(url, str):
        return
    try:
        parts = urlsplit(url)
    except ValueError as error:
        message = f"{what} is not a valid URL: {error}"
        raise InvalidInput.single(file, json_path(where), message) from None
    if parts.username is not None or parts.password is not None:
        raise InvalidInput.single(
            file,
            json_path(where),
            f"{what} carries credentials, which would be baked into the image: remove them and"
            " pass a key at run time (OLLAMA_API_KEY, a tool's api_key_env, or ${VAR} in headers)",
        )


def normalize_tool(
    tool_id: str,
    raw: Any,
    file: str,
    prefix: tuple[str | int, ...],
    script_root: Path | None,
    script_dir: Path | None = None,
) -> ResolvedTool:
    """Turn a raw tool definition (any format) into the bundle form, or raise InvalidInput.

    ``script_root`` is the registry folder of a YAML tool (scripts must lie inside it) and
    ``script_dir`` the YAML's own folder (scripts are named relative to it); None for a tool
    embedded in a workflow, which must carry its code.
    """
    if not isinstance(raw, dict):
        raise InvalidInput.single(file, json_path(prefix), "a tool definition must be a mapping")
    problems = schema_problems(raw, "tool", file, prefix)
    if problems:
        raise InvalidInput(problems)
    kind = KINDS[raw["type"]]
    common = {
        "id": tool_id,
        "kind": kind,
        "timeout": raw.get("timeout"),
        "fallback_tool": raw.get("fallback_tool"),
        "retry_on_failure": raw.get("retry_on_failure"),
    }
    executable = raw.get("executable") or {}
    requirements = tuple(raw.get("requirements") or executable.get("requirements") or ())
    origin = file if script_root is not None else "embedded"
    if kind == "llm":
        block = {**raw, **(raw.get("llm") or {})}
        tool = dict(common)
        for key in LLM_KEYS:
            if block.get(key) is not None:
                tool[key] = block[key]
        if block.get("max_tokens") is not None:
            tool["num_predict"] = block["max_tokens"]
        if block.get("timeout") is not None:
            tool["timeout"] = block["timeout"]
        where = (
            (*prefix, "llm", "endpoint")
            if (raw.get("llm") or {}).get("endpoint")
            else (
                *prefix,
                "endpoint",
            )
        )
        _check_url(tool.get("endpoint"), file, where, "the endpoint")
        return ResolvedTool(tool_id, tool, origin, requirements)
    if kind == "api":
        if "api_spec" not in raw:
            raise InvalidInput.single(
                file,
                json_path(prefix),
                "an api tool needs 'api_spec': {method, url, headers, body} (the engine makes"
                " that HTTP call); for other HTTP work write a python tool",
            )
        spec = dict(raw["api_spec"])
        spec["method"] = str(spec.get("method", "GET")).upper()
        _check_url(spec["url"], file, (*prefix, "api_spec", "url"), "api_spec.url")
        return ResolvedTool(tool_id, {**common, "api_spec": spec}, origin, requirements)
    source = _executable_source(raw, file, prefix, script_root, script_dir or script_root)
    return ResolvedTool(tool_id, {**common, "source": source}, origin, requirements)


def _executable_source(
    raw: dict, file: str, prefix: tuple, script_root: Path | None, script_dir: Path | None
) -> str:
    block = raw.get("executable") or {}
    where = json_path((*prefix, "executable") if block else prefix)
    for container, key in ((raw, "code"), (raw, "source_code"), (block, "code")):
        if key in container:
            return container[key]
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
                file,
                where,
                "give the tool's Python: 'source_code' or 'code' (the code itself),"
                " 'script: NAME.py', or args ['-c', CODE] / ['NAME.py']",
            )
    if script_root is None or script_dir is None:
        raise InvalidInput.single(
            file, where, "an embedded tool must carry its code in 'source_code' or 'code'"
        )
    return read_script(script, script_root, script_dir, file, where)


def read_script(script: str, root: Path, folder: Path, file: str, where: str) -> str:
    """A tool's script, named relative to its YAML's ``folder``, from inside the registry
    ``root``: relative, no ``..``, a regular file, small.

    ``{tool_dir}/x.py`` (the original's placeholder for the tool's folder) means ``x.py``.
    """
    name = script.replace("{tool_dir}/", "", 1)
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or not name:
        raise InvalidInput.single(
            file,
            where,
            f"script {script!r} must be a relative path inside the tool's registry folder"
            " (no absolute paths, no '..')",
        )
    try:
        path = resolve_name(folder, name)
    except BadPath as error:
        raise InvalidInput.single(file, where, f"script {script!r} {error}") from None
    if not path.is_relative_to(root.resolve()):
        raise InvalidInput.single(
            file, where, f"script {script!r} leads outside the registry folder {root}"
        )
    try:
        return read_text(path, limit=MAX_SCRIPT_BYTES)
    except InvalidInput as error:
        reason = error.problems[0].message
        raise InvalidInput.single(file, where, f"cannot use script {script!r}: {reason}") from None


@cache
def _listing(root: Path) -> tuple[Path, ...]:
    """The files under a registry folder, once per process (every target of a graph asks)."""
    return tuple(sorted(p for p in root.rglob("*") if "__pycache__" not in p.parts))


class Registry:
    """Tool ids to YAML files over several folders; the first folder with an id wins."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots: list[Path] = []
        for root in roots:
            resolved = root.resolve()
            if resolved.is_dir() and resolved not in self.roots:
                self.roots.append(resolved)
        self._files: dict[str, tuple[Path, Path]] = {}
        for root in reversed(self.roots):  # earlier roots override later ones
            for path in _listing(root):
                if path.suffix in (".yaml", ".yml") and path.is_file():
                    self._files[path.stem] = (path, root)

    @classmethod
    def for_workflow(cls, workflow_path: Path, extra: list[Path] | None = None) -> Registry:
        """The layered registry a workflow sees (see the module docstring for the order)."""
        beside = workflow_path.resolve().parent.parent / "tools"
        return cls([*(extra or []), beside, Path.cwd() / "tools", BUILTIN_TOOLS])

    def ids(self) -> set[str]:
        return set(self._files)

    def file(self, tool_id: str) -> Path | None:
        found = self._files.get(tool_id)
        return found[0] if found else None

    def files(self) -> list[Path]:
        """Every file a tool could be read from (for the build graph's dependencies)."""
        found: list[Path] = []
        for root in self.roots:
            found += [p for p in _listing(root) if p.suffix in (".yaml", ".yml", ".py")]
        return found

    def load(self, tool_id: str) -> ResolvedTool | None:
        found = self._files.get(tool_id)
        if found is None:
            return None
        path, root = found
        return normalize_tool(tool_id, load_yaml(path), str(path), (), root, path.parent)


def resolve_tools(
    workflow: Workflow, registry: Registry, model: str | None = None
) -> dict[str, ResolvedTool]:
    """Every tool the workflow's steps use, fallbacks included; nothing else (tree-shaking).

    Raises :class:`InvalidInput` naming each unknown or mismatched tool.
    """
    file = str(workflow.path)
    base = workflow.where
    embedded = workflow.data.get("tools") or {}
    resolved: dict[str, ResolvedTool] = {}
    problems: list[Problem] = []

    def lookup(tool_id: str, where: tuple[str | int, ...]) -> ResolvedTool | None:
        if tool_id in resolved:
            return resolved[tool_id]
        try:
            if tool_id in embedded:
                tool = normalize_tool(
                    tool_id, embedded[tool_id], file, (*base, "tools", tool_id), None
                )
            elif workflow.portable:
                problems.append(
                    Problem(
                        file,
                        json_path((*base, *where)),
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
                Problem(
                    file,
                    json_path((*base, *where)),
                    f"unknown tool '{tool_id}' (searched {searched})",
                )
            )
            return None
        if tool.kind == "llm" and not tool.definition.get("model"):
            tool = ResolvedTool(
                tool_id,
                {**tool.definition, "model": default_model(model)},
                tool.origin,
                tool.requirements,
            )
        resolved[tool_id] = tool
        return tool

    for index, step in enumerate(workflow.steps):
        if "tool" not in step:
            continue
        tool = lookup(step["tool"], ("steps", index, "tool"))
        wanted = _wanted_kinds(step["type"])
        if tool is not None and tool.kind not in wanted:
            problems.append(
                Problem(
                    file,
                    json_path((*base, "steps", index, "tool")),
                    f"step type '{step['type']}' needs an {' or '.join(wanted)} tool,"
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


def _wanted_kinds(step_type: str) -> tuple[str, ...]:
    if step_type == "llm_call":
        return ("llm",)
    if step_type == "python_tool":
        return ("executable", "api")
    return ("llm", "executable", "api")  # existing_tool: whatever the tool is
