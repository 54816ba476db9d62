"""The inputs file of a batch: JSON Lines, scanned once (a bad line is found before any container
starts), read again lazily by index when sent, and split into shards for Swarm and Kubernetes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rules.errors import InputProblem
from runner_template.batch import BOM, MAX_LINE_BYTES
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads


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
        """Index the non-blank lines the way the engine's batch reader counts them
        (``runner_template.batch.read_lines``): a BOM at the start of the file is not part of
        line 1, and a line over ``MAX_LINE_BYTES`` is one (bad) line however long it is, so
        the indices after it do not shift."""
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
                start, length = offset, len(raw)
                if offset == 0 and raw.startswith(BOM):
                    start, length, raw = len(BOM), length - len(BOM), raw[len(BOM) :]
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    length += _skip_rest_of_line(handle, digest)
                    found.bad[len(found.lines)] = f"line longer than {MAX_LINE_BYTES} bytes"
                    found.lines.append(InputLine(len(found.lines), start, length))
                elif raw.strip():
                    index = len(found.lines)
                    found.lines.append(InputLine(index, start, length))
                    problem = _line_problem(raw)
                    if problem:
                        found.bad[index] = problem
                offset = start + length
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


def _skip_rest_of_line(handle, digest) -> int:
    """Read past the rest of an oversized line (into ``digest``); the bytes skipped."""
    skipped = 0
    while True:
        chunk = handle.readline(MAX_LINE_BYTES + 1)
        digest.update(chunk)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _line_problem(raw: bytes) -> str | None:
    try:
        value = bounded_loads(raw.decode("utf-8"))
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
