"""Prompt templates: ``{name}`` is replaced by a mapped value; every other brace is literal.

``str.format`` is the wrong tool here: prompts routinely contain JSON examples such as
``{"category": "..."}``, which ``format`` rejects or mangles. The rules:

* ``{name}`` where ``name`` is one of the given values -> that value (strings as they are,
  anything else as compact JSON);
* ``{{`` and ``}}`` -> a literal ``{`` and ``}``;
* any other brace -> itself.
"""

from __future__ import annotations

import re
from typing import Any

from runner_template.errors import ToolError
from runner_template.jsonsafe import JSONLimitError, dumps

_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> list[str]:
    """Names of the ``{name}`` placeholders in ``template``, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _TOKEN_RE.finditer(template):
        if match.group(1):
            seen.setdefault(match.group(1), None)
    return list(seen)


def format_value(value: Any) -> str:
    """How a value is written into a prompt (a :class:`ToolError` if it cannot be written)."""
    if isinstance(value, str):
        return value
    try:
        return dumps(value)
    except JSONLimitError as error:
        raise ToolError(error.message) from None


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``template`` with ``values`` following the module's rules."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        return format_value(values[name]) if name in values else token

    return _TOKEN_RE.sub(substitute, template)
