"""A workflow and its sub-workflows, loaded and checked as one tree.

A ``sub_workflow`` step names its child by ``workflow_path`` (relative to the parent's file) or
embeds it as ``workflow_spec``. Children are checked like any workflow; their problems keep
their own file and JSON path and say which parent step brought them in, so both files are
named. Files are confined to the root workflow's folder (no absolute paths, nothing outside it
after resolving links, regular files only), a cycle of workflows is an error, and the tree is at
most :data:`MAX_DEPTH` levels deep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from rules.errors import InvalidInput, Problem, json_path
from rules.files.jsonfile import load_json
from rules.files.registry import Registry
from rules.fsutil import BadPath, resolve_name

if TYPE_CHECKING:
    from rules.files.spec import Workflow

MAX_DEPTH = 8


@dataclass
class WorkflowNode:
    """One workflow of the tree; ``children`` maps a step index to the child it runs."""

    workflow: Workflow
    registry: Registry
    children: dict[int, WorkflowNode] = field(default_factory=dict)

    def walk(self):
        """This node and every node below it, parents first."""
        yield self
        for child in self.children.values():
            yield from child.walk()

    def files(self) -> list[Path]:
        """The workflow files of the tree (each once)."""
        found: list[Path] = []
        for node in self.walk():
            if node.workflow.path not in found:
                found.append(node.workflow.path)
        return found


def load_tree(path: Path, tools_dirs: list[Path] | None = None) -> WorkflowNode:
    """Load ``path`` and its sub-workflows; raise :class:`InvalidInput` with every problem."""
    from rules.files.spec import load_workflow

    path = Path(path)
    root = load_workflow(path)
    registry = Registry.for_workflow(path, tools_dirs)
    node = WorkflowNode(root, registry)
    _load_children(node, path.resolve().parent, tools_dirs, [path.resolve()])
    return node


def _context(parent: Workflow, index: int, key: str) -> str:
    where = json_path((*parent.where, "steps", index, key))
    return f" (sub-workflow of {parent.path} {where})"


def _load_children(
    node: WorkflowNode, root_dir: Path, tools_dirs: list[Path] | None, chain: list[Path]
) -> None:
    from rules.files.spec import check_workflow, load_workflow

    parent = node.workflow
    file = str(parent.path)
    problems: list[Problem] = []
    for index, step in enumerate(parent.steps):
        if step["type"] != "sub_workflow":
            continue
        here = (*parent.where, "steps", index)
        if len(chain) >= MAX_DEPTH:
            problems.append(
                Problem(file, json_path(here), f"sub-workflows nest deeper than {MAX_DEPTH} levels")
            )
            continue
        try:
            if "workflow_spec" in step:
                child = check_workflow(step["workflow_spec"], parent.path, (*here, "workflow_spec"))
                child_node = WorkflowNode(child, node.registry)
                child_chain = chain
            else:
                child_path = _child_path(step["workflow_path"], parent, root_dir, file, here)
                if child_path in chain:
                    names = " -> ".join(p.name for p in [*chain, child_path])
                    problems.append(
                        Problem(
                            file,
                            json_path((*here, "workflow_path")),
                            f"cycle of sub-workflows: {names}",
                        )
                    )
                    continue
                try:
                    child = load_workflow(child_path)
                except InvalidInput as error:
                    raise _with_context(error, _context(parent, index, "workflow_path")) from None
                child_node = WorkflowNode(child, Registry.for_workflow(child_path, tools_dirs))
                child_chain = [*chain, child_path]
            _load_children(child_node, root_dir, tools_dirs, child_chain)
            node.children[index] = child_node
        except InvalidInput as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidInput(problems)


def _with_context(error: InvalidInput, context: str) -> InvalidInput:
    return InvalidInput([Problem(p.file, p.path, p.message + context) for p in error.problems])


def _child_path(text: str, parent: Workflow, root_dir: Path, file: str, here: tuple) -> Path:
    where = json_path((*here, "workflow_path"))
    pure = PurePosixPath(text)
    if pure.is_absolute() or "\\" in text:
        raise InvalidInput.single(
            file, where, f"{text!r} must be a path relative to {parent.path.name}"
        )
    try:
        resolved = resolve_name(parent.path.resolve().parent, text)
    except BadPath as error:
        raise InvalidInput.single(file, where, f"sub-workflow {text!r} {error}") from None
    if not resolved.is_relative_to(root_dir):
        raise InvalidInput.single(
            file,
            where,
            f"{text!r} leads outside the root workflow's folder {root_dir}: sub-workflows must"
            " live beside or below it",
        )
    if not resolved.is_file():
        reason = "not found" if not resolved.exists() else "not a regular file"
        raise InvalidInput.single(file, where, f"sub-workflow {text!r}: {reason}")
    return resolved


def scan_files(path: Path) -> list[Path]:
    """Best effort, never raising: the workflow files a tree would read (for doit's
    ``file_dep``, computed when the graph loads; the analyze step reports real problems)."""
    found: list[Path] = []
    todo = [Path(path)]
    while todo and len(found) < 100:
        current = todo.pop()
        try:
            resolved = resolve_name(Path.cwd(), str(current))
        except BadPath:
            continue
        if resolved in found:
            continue
        found.append(resolved)
        try:
            data = load_json(current)
        except InvalidInput:
            continue
        for relative in _workflow_paths(data):
            try:
                child = resolve_name(resolved.parent, relative)
            except BadPath:
                continue
            if child.is_file():
                todo.append(child)
    return found


def _workflow_paths(data, depth: int = 0) -> list[str]:
    """``workflow_path`` values of a workflow's steps, embedded specs included."""
    steps = data.get("steps") if isinstance(data, dict) else None
    found: list[str] = []
    for step in steps if isinstance(steps, list) and depth < MAX_DEPTH else []:
        if not isinstance(step, dict):
            continue
        if isinstance(step.get("workflow_path"), str):
            found.append(step["workflow_path"])
        found += _workflow_paths(step.get("workflow_spec"), depth + 1)
    return found
