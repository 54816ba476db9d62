"""What a browser cannot give a tool: refused when the web site is built, one line per tool.

Pyodide runs Python in a page: there is no process to start, no socket to open (HTTP goes
through ``fetch``, which only the engine's own calls use), and only pure-Python wheels can be
loaded from the site. A tool that needs one of these would fail at run time in every browser,
so the build says so first, naming the tool, what it uses and why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from packaging.utils import parse_wheel_filename

from rules.errors import InvalidInput, Problem
from rules.stages.lock import requirement_origin

# Imported module (or a package of it) -> what it needs that a browser does not have.
UNAVAILABLE = {
    "subprocess": "starts processes",
    "multiprocessing": "starts processes",
    "concurrent.futures.process": "starts processes",
    "pty": "starts processes",
    "socket": "opens raw sockets",
    "socketserver": "opens raw sockets",
    "ssl": "opens raw sockets",
    "select": "waits on sockets",
    "selectors": "waits on sockets",
    "asyncio.subprocess": "starts processes",
    "http.client": "opens raw sockets (HTTP from a tool is not fetch)",
    "http.server": "listens on a socket",
    "urllib.request": "opens raw sockets (HTTP from a tool is not fetch)",
    "ftplib": "opens raw sockets",
    "smtplib": "opens raw sockets",
    "requests": "opens raw sockets (HTTP from a tool is not fetch)",
    "httpx": "opens raw sockets (HTTP from a tool is not fetch)",
    "urllib3": "opens raw sockets (HTTP from a tool is not fetch)",
}
# Calls of ``os`` that start processes.
OS_CALLS = {
    "system",
    "popen",
    "fork",
    "forkpty",
    "spawnv",
    "spawnl",
    "execv",
    "execl",
    "posix_spawn",
}


def _why(module: str) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        reason = UNAVAILABLE.get(".".join(parts[:end]))
        if reason:
            return f"imports {module}, which {reason}"
    return None


def browser_problems(source: str) -> list[str]:
    """Why ``source`` cannot run in a browser (empty when it can), in source order."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "os"
            and (node.func.attr in OS_CALLS or node.func.attr.startswith(("exec", "spawn")))
        ):
            found.append(f"calls os.{node.func.attr}, which starts processes")
        for module in modules:
            reason = _why(module)
            if reason and reason not in found:
                found.append(reason)
    return found


def _code(bundle: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(label, Python source)`` of every tool and inline step of the bundle, children too."""
    parts = [
        ("", bundle),
        *((f"sub-workflow {k}: ", p) for k, p in bundle.get("workflows", {}).items()),
    ]
    for prefix, part in parts:
        for tool_id, tool in sorted(part.get("tools", {}).items()):
            if tool.get("kind") == "executable":
                yield f"{prefix}tool '{tool_id}'", tool["source"]
        for step in part["workflow"]["steps"]:
            if "code" in step and not step.get("tool"):
                yield f"{prefix}step '{step['step_id']}' (inline code)", step["code"]


def check_bundle(bundle: dict[str, Any], file: str) -> None:
    """Raise :class:`InvalidInput` naming each tool that cannot run in a browser."""
    problems = [
        Problem(
            file, label, f"{reason}: a browser cannot give that, so the web target cannot run it"
        )
        for label, source in _code(bundle)
        for reason in browser_problems(source)[:1]
    ]
    if problems:
        raise InvalidInput(problems)


def is_pure(wheel_file: str) -> bool:
    """A wheel Pyodide can load from the site: no compiled code (``py3-none-any``)."""
    _, _, _, tags = parse_wheel_filename(wheel_file)
    return all(tag.abi == "none" and tag.platform == "any" for tag in tags)


def check_wheels(wheels: list[dict[str, Any]], needs: dict[str, Any], file: str) -> None:
    """Raise :class:`InvalidInput` for each locked wheel with compiled code, naming who asked
    for it (``needs``: the analysis' ``packages``)."""
    problems = [
        Problem(
            *requirement_origin(needs, wheel["name"], file),
            f"package {wheel['name']} {wheel['version']} has compiled code ({wheel['file']}):"
            " the web target loads pure-Python wheels only",
        )
        for wheel in wheels
        if not is_pure(wheel["file"])
    ]
    if problems:
        raise InvalidInput(problems)
