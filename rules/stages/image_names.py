"""Image names: Docker's reference grammar, checked before anything runs, and the default tag.

Light on purpose (only ``re``): the doit graph checks names while it loads.
"""

from __future__ import annotations

import re

from rules.errors import UserError

# Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)"
_REFERENCE = re.compile(
    rf"(?P<name>{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*)(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


def check_reference(reference: str) -> str:
    """``reference`` if Docker accepts it as an image name; else a one-line :class:`UserError`
    (rather than the engine's HTTP 400 deep inside a build)."""
    found = _REFERENCE.fullmatch(reference)
    if not found or len(found.group("name")) > 255:
        raise UserError(
            f"{reference!r} is not a valid image name: use lowercase letters, digits and"
            " separators (. _ -), optionally a registry host and a ':tag', e.g. my-flow:1.0"
        )
    return reference


def default_tag(workflow_id: str) -> str:
    """``workflow-<id>:latest``, the id made a valid image name (ids are free text)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", workflow_id.lower())[:200].strip("._-")
    if not re.fullmatch(_COMPONENT, name):
        name = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "unnamed"
    return f"workflow-{name}:latest"
