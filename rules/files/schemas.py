"""JSON Schema validation (``jsonschema``) turned into :class:`Problem` lines."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from itertools import islice
from typing import Any

from rules.errors import Problem, json_path

MAX_PROBLEMS = 50
MAX_MESSAGE = 300


@cache
def _validator(name: str):
    # Imported here: jsonschema costs 0.1 s to import, and doit loads these rules on every run.
    from jsonschema import Draft202012Validator

    text = (
        resources.files("rules.files").joinpath("schema", f"{name}.schema.json").read_text("utf-8")
    )
    return Draft202012Validator(json.loads(text))


def schema_problems(
    data: Any, schema: str, file: str, prefix: tuple[str | int, ...] = ()
) -> list[Problem]:
    """The violations of schema ``schema`` in ``data`` (the first :data:`MAX_PROBLEMS`), sorted
    by where they are. Messages are cut short: a hostile file must not make a huge report."""
    problems = []
    for error in islice(_validator(schema).iter_errors(data), MAX_PROBLEMS):
        where = json_path((*prefix, *error.absolute_path))
        problems.append(Problem(file, where, _message(error)))
    return sorted(problems, key=lambda p: p.path)


def _message(error) -> str:
    if error.validator == "required":
        text = error.message.replace("is a required property", "is required")
    elif error.validator == "pattern":
        text = f"{_short(error.instance)} must match {error.validator_value!r}"
    elif error.validator in ("type", "enum", "maximum", "exclusiveMinimum", "minimum"):
        text = error.message.replace(repr(error.instance), _short(error.instance), 1)
    else:
        text = error.message
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _short(value: Any) -> str:
    """``repr`` of a value, at most 60 characters (it may be a megabyte of text)."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
