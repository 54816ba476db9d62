"""Pipeline step 0: load a workflow file and check it, structurally and semantically.

Structure comes from ``schema/workflow.schema.json`` (``jsonschema``); the meaning checks here
cover what a schema cannot say: step ids are unique, references point at real inputs and step
outputs, the steps can be ordered, the ``workflow_id`` is safe as an image and file name.
Tool names are checked later, against the registry (``registry.resolve_tools``), and
sub-workflows are loaded by ``rules/files/subworkflows.py``.

A workflow may also come embedded in another (a ``sub_workflow`` step's ``workflow_spec``):
:func:`check_workflow` takes the parent's file and the JSON path of the embedded object, so
every message still points at the exact spot.
"""

from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules.errors import InvalidInput, Problem, json_path
from rules.files.jsonfile import load_json
from rules.files.schemas import schema_problems
from runner_template.errors import InputError
from runner_template.inputs import check_value
from runner_template.plan import ordering_problems, step_dependencies
from runner_template.references import DOLLAR_DIALECT_RE, ReferenceSyntaxError, parse_reference
from runner_template.safe_regex import UnsupportedPattern, compile_pattern

SAFE_ID_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
SAFE_ID_MAX = 64
DEFAULT_OUTPUT_NAME = "output"


@dataclass(frozen=True)
class Workflow:
    """A workflow that passed every check of this module; ``data`` is the parsed JSON.

    ``path`` is the file it came from; ``where`` the JSON path of the workflow inside that file
    (empty for a whole file, e.g. ``("steps", 2, "workflow_spec")`` when embedded).
    """

    path: Path
    data: dict[str, Any]
    where: tuple[str | int, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.data["workflow_id"]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.data["steps"]

    @property
    def portable(self) -> bool:
        return bool(self.data.get("portable", False))


def load_workflow(path: Path | str) -> Workflow:
    """Load and check ``path``; raise :class:`InvalidInput` listing every problem found."""
    path = Path(path)
    return check_workflow(load_json(path), path)


def check_workflow(data: Any, path: Path, where: tuple[str | int, ...] = ()) -> Workflow:
    """Check parsed ``data`` (the whole of ``path``, or the object at ``where`` in it)."""
    file = str(path)
    if not isinstance(data, dict):
        raise InvalidInput.single(file, json_path(where), "a workflow must be a JSON object")
    problems = schema_problems(data, "workflow", file, where)
    if not problems:
        problems = _semantic_problems(data, file, where)
    if problems:
        raise InvalidInput(problems)
    return Workflow(path, data, where)


def output_name(step: dict[str, Any]) -> str:
    return step.get("output_name") or DEFAULT_OUTPUT_NAME


def _semantic_problems(
    data: dict[str, Any], file: str, where: tuple[str | int, ...] = ()
) -> list[Problem]:
    problems: list[Problem] = []

    def add(parts: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(file, json_path((*where, *parts)), message))

    workflow_id = data["workflow_id"]
    if not SAFE_ID_RE.match(workflow_id) or len(workflow_id) > SAFE_ID_MAX:
        add(
            ("workflow_id",),
            f"{workflow_id!r} is not a safe name: use 1-{SAFE_ID_MAX} lowercase letters and digits"
            " separated by single '.', '_' or '-' (it becomes an image name, a file name and"
            " a label)",
        )

    inputs = data.get("inputs") or {}
    for name, spec in inputs.items():
        _check_input_spec(name, spec, add)

    steps = data["steps"]
    outputs_by_step: dict[str, str] = {}
    for index, step in enumerate(steps):
        step_id = step["step_id"]
        if step_id in outputs_by_step:
            add(("steps", index, "step_id"), f"duplicate step id '{step_id}'")
        outputs_by_step[step_id] = output_name(step)

    for index, step in enumerate(steps):
        _check_step(index, step, inputs, outputs_by_step, add)

    for name, spec in (data.get("outputs") or {}).items():
        _check_reference(
            spec["source_reference"],
            ("outputs", name, "source_reference"),
            inputs,
            outputs_by_step,
            add,
        )

    if not problems:
        for index, message in ordering_problems(steps):
            add(("steps", index), message)
    if not problems:
        try:
            graphlib.TopologicalSorter(step_dependencies(steps)).prepare()
        except graphlib.CycleError as error:
            cycle = " -> ".join(error.args[1])
            add(("steps",), f"dependency cycle: {cycle}")
    return problems


def _check_input_spec(name: str, spec: dict[str, Any], add) -> None:
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            compile_pattern(pattern)
        except re.error as error:
            add(("inputs", name, "pattern"), f"invalid regular expression: {error}")
            return
        except UnsupportedPattern as error:
            add(
                ("inputs", name, "pattern"),
                f"{error} (patterns are matched in linear time; see docs/WORKFLOWS.md)",
            )
            return
    if "default" in spec:
        try:
            check_value(name, spec, spec["default"])
        except InputError as error:
            add(("inputs", name, "default"), f"the default breaks its own declaration: {error}")


def _check_step(index: int, step: dict[str, Any], inputs, outputs_by_step, add) -> None:
    here = ("steps", index)
    step_id = step["step_id"]
    kind = step["type"]
    has_tool, has_code = "tool" in step, "code" in step
    if step.get("generate_tool") and not has_tool:
        add(
            (*here, "generate_tool"),
            "tools generated by an LLM at run time are not supported (an image must know its"
            " code when it is built): name a registry tool in 'tool' or give inline 'code'",
        )
    elif kind == "llm_call" and not has_tool:
        add(here, "an llm_call step needs 'tool' (an LLM tool id)")
    elif kind == "existing_tool" and not has_tool:
        add(here, "an existing_tool step needs 'tool' (a registry tool id)")
    elif kind == "python_tool" and has_tool == has_code:
        add(
            here,
            "a python_tool step needs exactly one of 'tool' (a tool id) or 'code' (inline Python)",
        )
    elif kind == "sub_workflow":
        if ("workflow_path" in step) == ("workflow_spec" in step):
            add(
                here,
                "a sub_workflow step needs exactly one of 'workflow_path' (a file, relative to"
                " this one) or 'workflow_spec' (the child workflow itself)",
            )
        for key in ("tool", "code", "prompt_template"):
            if key in step:
                add((*here, key), f"'{key}' does not apply to a sub_workflow step")
    if kind in ("llm_call", "existing_tool") and has_code:
        add((*here, "code"), "inline 'code' belongs to python_tool steps")

    template = step.get("prompt_template")
    if template and DOLLAR_DIALECT_RE.search(template):
        found = DOLLAR_DIALECT_RE.search(template).group(0)
        add(
            (*here, "prompt_template"),
            f"'{found}' uses the ${{...}} dialect, which is not supported: map the value in"
            ' input_mapping ("name": "inputs.x") and write {name} in the template',
        )

    for key, value in (step.get("input_mapping") or {}).items():
        where = (*here, "input_mapping", key)
        if isinstance(value, str):
            _check_reference(value, where, inputs, outputs_by_step, add, own_step=step_id)
        elif isinstance(value, dict) and set(value) != {"literal"}:
            add(where, 'an object value must be {"literal": ...}; references are strings')

    for position, dep in enumerate(step.get("depends_on") or []):
        if dep not in outputs_by_step:
            add((*here, "depends_on", position), f"unknown step '{dep}'")


def _check_reference(text: str, where, inputs, outputs_by_step, add, own_step: str | None = None):
    try:
        ref = parse_reference(text)
    except ReferenceSyntaxError as error:
        add(where, str(error))
        return
    if ref.source == "inputs":
        if ref.name not in inputs:
            known = ", ".join(sorted(inputs)) or "none"
            add(
                where, f"'{text}' names input '{ref.name}', which is not declared (inputs: {known})"
            )
        return
    if ref.name not in outputs_by_step:
        add(where, f"'{text}' names step '{ref.name}', which does not exist")
    elif ref.name == own_step:
        add(where, f"'{text}': a step cannot read its own output")
    elif ref.output != outputs_by_step[ref.name]:
        add(
            where,
            f"'{text}': step '{ref.name}' produces '{outputs_by_step[ref.name]}', not"
            f" '{ref.output}' (its output_name)",
        )
