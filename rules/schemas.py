"""JSON Schema validation (``jsonschema``) turned into :class:`Problem` lines."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from rules.errors import Problem, json_path


@cache
def _validator(name: str):
    # Imported here: jsonschema costs 0.1 s to import, and doit loads these rules on every run.
    from jsonschema import Draft202012Validator

    text = resources.files("rules").joinpath("schema", f"{name}.schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def schema_problems(
    data: Any, schema: str, file: str, prefix: tuple[str | int, ...] = ()
) -> list[Problem]:
    """Every violation of schema ``schema`` in ``data``, sorted by where it is."""
    problems = []
    for error in _validator(schema).iter_errors(data):
        where = json_path((*prefix, *error.absolute_path))
        problems.append(Problem(file, where, _message(error)))
    return sorted(problems, key=lambda p: p.path)


def _message(error) -> str:
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "additionalProperties":
        return error.message
    if error.validator == "pattern":
        return f"{error.instance!r} must match {error.validator_value!r}"
    return error.message
