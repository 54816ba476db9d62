"""The inputs file of a batch: JSON Lines, scanned once (a bad line is found before any container
starts), read again lazily by index when sent, and split into shards for Swarm and Kubernetes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rules.errors import InputProblem
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads

MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass
class InputLine:
    index: int
    offset: int
    length: int


@dataclass
class InputsFile:
    """The non-blank lines of an inputs file, by index; read again lazily when sent."""

    path: Path
    lines: list[InputLine] = field(default_factory=list)
    digest: str = ""
    bad: dict[int, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, path: Path) -> InputsFile:
        found = cls(path)
        digest = hashlib.sha256()
        try:
            handle = path.open("rb")
        except OSError as error:
            raise InputProblem(f"{path}: cannot read the inputs: {error.strerror}") from None
        with handle:
            offset = 0
            while True:
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                digest.update(raw)
                if raw.strip():
                    index = len(found.lines)
                    found.lines.append(InputLine(index, offset, len(raw)))
                    problem = _line_problem(raw)
                    if problem:
                        found.bad[index] = problem
                offset += len(raw)
        found.digest = digest.hexdigest()
        return found

    def read(self, line: InputLine) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(line.offset)
            return handle.read(line.length).strip()

    def indexed(self, indices: list[int]) -> Iterator[bytes]:
        """``{"index": I, "inputs": <the line>}`` lines for the image's ``--indexed`` mode."""
        with self.path.open("rb") as handle:
            for index in indices:
                line = self.lines[index]
                handle.seek(line.offset)
                raw = handle.read(line.length).strip()
                yield b'{"index": %d, "inputs": ' % index + raw + b"}\n"


def _line_problem(raw: bytes) -> str | None:
    if len(raw) > MAX_LINE_BYTES:
        return f"line longer than {MAX_LINE_BYTES} bytes"
    try:
        value = bounded_loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return "line is not UTF-8 text"
    except (json.JSONDecodeError, JSONLimitError) as error:
        return f"line is not valid JSON: {error}"
    if not isinstance(value, dict):
        return f"inputs must be a JSON object, got {type(value).__name__}"
    return None


def split(indices: list[int], shards: int) -> list[list[int]]:
    """``indices`` in ``shards`` contiguous, nearly equal parts (none empty)."""
    shards = max(1, min(shards, len(indices)))
    size, extra = divmod(len(indices), shards)
    parts, start = [], 0
    for number in range(shards):
        end = start + size + (1 if number < extra else 0)
        parts.append(indices[start:end])
        start = end
    return parts
