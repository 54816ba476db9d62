"""The options that the user-facing modules' docstrings name exist (a documented flag that does
not is a promise the command line breaks: ``--volume-driver`` once was one)."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from rules.cli.parser import build_parser
from runner_template.main import _parser as runner_parser

ROOT = Path(__file__).resolve().parent.parent
USER_FACING = ("rules/cli", "rules/deploy")
OTHER_TOOLS = ("kubectl ", "docker ", "pip ")  # a ``kubectl logs --tail=-1`` span is theirs
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            found.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
    return found


def _documented_flags() -> dict[str, str]:
    flags: dict[str, str] = {}
    for folder in USER_FACING:
        for path in sorted((ROOT / folder).rglob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            spans = re.split(r"``", doc)
            for span in spans:
                if span.startswith(OTHER_TOOLS):
                    continue
                for flag in FLAG.findall(span):
                    flags.setdefault(flag, str(path.relative_to(ROOT)))
    return flags


def test_every_flag_in_a_user_facing_docstring_exists():
    known = _options(build_parser()) | _options(runner_parser())
    flags = _documented_flags()
    assert "--retry-failed" in flags  # the scan reads what it should
    assert {flag: where for flag, where in flags.items() if flag not in known} == {}
