"""Read JSON and YAML files the way users write them, with errors that point at the spot.

One reader for every file the build takes in: a UTF-8 BOM is accepted, a syntax error names
line and column, and a key written twice in one object is an error (JSON parsers silently keep
the last one, which hides copy-paste mistakes in workflows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from rules.errors import InvalidInput


def _no_duplicate_keys(file: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise InvalidInput.single(file, "$", f"key {key!r} appears twice in one object")
            result[key] = value
        return result

    return hook


def read_text(path: Path) -> str:
    """The file's text; a BOM is dropped, unreadable or non-UTF-8 files are clear errors."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput.single(str(path), "$", "file not found") from None
    except IsADirectoryError:
        raise InvalidInput.single(str(path), "$", "is a directory, not a file") from None
    except OSError as error:
        raise InvalidInput.single(str(path), "$", f"cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput.single(
            str(path), "$", f"not UTF-8 text (byte {error.start}: {error.reason})"
        ) from None


def load_json(path: Path) -> Any:
    """Parse a JSON file; syntax errors report line and column."""
    text = read_text(path)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(str(path)))
    except json.JSONDecodeError as error:
        raise InvalidInput.single(
            str(path), "$", f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None


def load_yaml(path: Path) -> Any:
    """Parse a YAML file (tool definitions); syntax errors report line and column."""
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise InvalidInput.single(str(path), "$", f"invalid YAML{where}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise InvalidInput.single(str(path), "$", f"invalid YAML: {error}") from None
