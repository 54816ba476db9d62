"""Read JSON and YAML files the way users write them, and the way attackers write them.

One reader for every file the build takes in: a UTF-8 BOM is accepted, a syntax error names
line and column, and a key written twice in one object is an error (parsers silently keep the
last one, which hides copy-paste mistakes). Hostile files get the same one-line treatment
within bounded time and memory: files over :data:`MAX_FILE_BYTES`, documents nested deeper than
``MAX_DEPTH``, ``NaN``/``Infinity``, lone surrogates, and YAML aliases (a 600-byte "billion
laughs" file expands to gigabytes) are refused before anything else looks at the data. YAML is
read as JSON's data model: dates, ``!!binary``, ``!!set``, ordered pairs and keys that are not
strings are refused at load time, so ``analyze``, ``run --local`` and ``export`` agree.
"""

from __future__ import annotations

import json
import stat
from functools import cache
from pathlib import Path
from typing import Any

from rules.errors import InvalidInput
from runner_template.jsonsafe import MAX_DEPTH, MAX_INT_DIGITS, JSONLimitError, check_tree
from runner_template.jsonsafe import loads as bounded_loads

MAX_FILE_BYTES = 8 * 1024 * 1024


class _DuplicateKey(Exception):
    def __init__(self, key: Any) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; anything else is a clear error.

    Devices, FIFOs and directories are refused before reading (``/dev/zero`` never ends).
    """
    file = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidInput.single(file, "$", "file not found") from None
    except OSError as error:
        raise InvalidInput.single(file, "$", f"cannot read: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInput.single(file, "$", "is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput.single(file, "$", "is not a regular file")
    if info.st_size > limit:
        raise InvalidInput.single(
            file, "$", f"is {info.st_size} bytes; files over {limit} bytes are refused"
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise InvalidInput.single(file, "$", f"cannot read: {error.strerror}") from None
    if len(data) > limit:
        raise InvalidInput.single(file, "$", f"files over {limit} bytes are refused")
    return data


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The file's text; a BOM is dropped, unreadable or non-UTF-8 files are clear errors."""
    try:
        return read_bytes(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput.single(
            str(path), "$", f"not UTF-8 text (byte {error.start}: {error.reason})"
        ) from None


def parse_json(text: str, file: str) -> Any:
    """Parse JSON ``text`` (from ``file``, for messages) with every bound of this module."""
    try:
        return bounded_loads(text, text_checks=True, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as error:
        raise InvalidInput.single(
            file, "$", f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except _DuplicateKey as error:
        raise InvalidInput.single(
            file, "$", f"key {error.key!r} appears twice in one object"
        ) from None
    except JSONLimitError as error:
        raise InvalidInput.single(file, error.where, error.message) from None


def load_json(path: Path) -> Any:
    """Parse a JSON file; syntax errors report line and column."""
    return parse_json(read_text(path), str(path))


@cache
def _tool_file_loader():
    """PyYAML's safe loader without aliases, duplicate keys or unbounded nesting (built on first
    use: PyYAML costs import time that a no-op build graph load should not pay)."""
    import yaml

    class ToolFileLoader(yaml.SafeLoader):
        """PyYAML's safe loader without aliases, duplicate keys or unbounded nesting."""

        _depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in tool files", mark
                )
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise yaml.composer.ComposerError(
                        None, None, f"nested more than {MAX_DEPTH} levels deep", mark
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"a key must be a string (JSON has no {_yaml_type(key)} keys): quote it",
                        key_node.start_mark,
                    )
                duplicate = key in seen
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    def bounded_int(loader, node):
        # int() of over 4,300 decimal digits raises a bare ValueError inside PyYAML.
        text = loader.construct_scalar(node)
        digits = sum(character.isdigit() for character in text)
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"an integer of {digits} digits (at most {MAX_INT_DIGITS})",
                node.start_mark,
            )
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)

    ToolFileLoader.add_constructor("tag:yaml.org,2002:int", bounded_int)

    def refuse_non_json(loader, node):
        kind = node.tag.rsplit(":", 1)[-1]
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"a YAML {kind} ({node.tag}) is not a JSON type: quote it as a string",
            node.start_mark,
        )

    # SafeLoader also builds dates, bytes, sets and ordered pairs, which JSON cannot hold:
    # a tool file that passed ``analyze`` would crash ``run --local`` and ``export`` later.
    for tag in NON_JSON_YAML_TAGS:
        ToolFileLoader.add_constructor(f"tag:yaml.org,2002:{tag}", refuse_non_json)
    return ToolFileLoader


NON_JSON_YAML_TAGS = ("timestamp", "binary", "set", "omap", "pairs")


def _yaml_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def load_yaml(path: Path) -> Any:
    """Parse a YAML file (tool definitions); syntax errors report line and column."""
    import yaml

    text = read_text(path)
    file = str(path)
    try:
        data = yaml.load(text, Loader=_tool_file_loader())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise InvalidInput.single(file, "$", f"invalid YAML{where}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise InvalidInput.single(file, "$", f"invalid YAML: {error}") from None
    except RecursionError:
        raise InvalidInput.single(file, "$", f"nested more than {MAX_DEPTH} levels deep") from None
    try:
        check_tree(data, text_checks=True)
    except JSONLimitError as error:
        raise InvalidInput.single(file, error.where, error.message) from None
    return data
