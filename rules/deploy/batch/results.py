"""The results file of a batch: append as results arrive, lose nothing, resume, end in order.

``RESULTS.jsonl`` holds one line per input index. While a batch runs, every result is appended
as one complete line and flushed to disk, so an interrupt (Ctrl-C, SIGTERM, a killed process or
container) loses nothing that finished. When the batch ends, or is interrupted, the file is
rewritten in input order through a temporary file and a rename (never half-written).

Running the same batch again resumes: indices that have a line are skipped, and with
``retry_failed`` the ones whose line is an error run again (their new line replaces the old).
A line cut short by a crash is dropped on reading, so no torn or duplicate line survives. A
lock file keeps two batches from writing one results file, and a small state file beside it
remembers the digest of the inputs, so a results file is never resumed with other inputs.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from rules.errors import InputProblem, UserError
from rules.fsutil import atomic_write
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads


class ResultsFile:
    """Open with :meth:`open` (takes the lock), then :meth:`append`, then :meth:`close`."""

    def __init__(self, path: Path, inputs_digest: str, retry_failed: bool = False) -> None:
        self.path = path
        self.inputs_digest = inputs_digest
        self.retry_failed = retry_failed
        self.records: dict[int, dict[str, Any]] = {}
        self._lock_handle = None
        self._handle = None

    @property
    def state_path(self) -> Path:
        return self.path.with_name(self.path.name + ".state.json")

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> ResultsFile:
        if self.path.exists() and not self.path.is_file():
            raise InputProblem(f"{self.path}: exists and is not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_handle = lock_path.open("a")
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_handle.close()
            raise UserError(
                f"{self.path}: another batch is writing this results file right now"
            ) from None
        try:
            self._check_state()
            self._read_existing()
        except BaseException:
            self.close()  # releases the lock
            raise
        if self.retry_failed:
            self.records = {i: r for i, r in self.records.items() if "error" not in r}
        self._rewrite()  # drops torn lines and, with retry_failed, the failed ones
        atomic_write(self.state_path, json.dumps({"inputs": self.inputs_digest}).encode())
        self._handle = self.path.open("ab")
        return self

    def _check_state(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("inputs") != self.inputs_digest:
            raise InputProblem(
                f"{self.path}: holds results of other inputs (or of an unknown run): remove it or"
                " choose another -o"
            )

    def _read_existing(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    break  # a line cut short by a crash: that input runs again
                if not raw.strip():
                    continue
                record = self._record(raw, number)
                self.records[record["index"]] = record

    def _record(self, raw: bytes, number: int) -> dict[str, Any]:
        """One complete line of an existing results file, parsed with the bounds of every JSON
        reader; a line that is not a result (``{"index": N, ...}`` with N a non-negative
        integer) is refused: keeping it would resume from a file this program did not write."""
        where = f"{self.path}: line {number}"
        try:
            record = bounded_loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputProblem(f"{where}: not UTF-8 text") from None
        except json.JSONDecodeError as error:
            raise InputProblem(f"{where}: not valid JSON ({error.msg})") from None
        except JSONLimitError as error:
            raise InputProblem(f"{where}: {error.where}: {error.message}") from None
        if not isinstance(record, dict):
            raise InputProblem(f"{where}: $: a result must be a JSON object")
        index = record.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise InputProblem(f"{where}: $.index: must be a non-negative integer")
        return record

    # -- writing ---------------------------------------------------------------------------

    def done(self) -> set[int]:
        return set(self.records)

    def failed(self) -> int:
        return sum(1 for r in self.records.values() if "error" in r)

    def append(self, record: dict[str, Any]) -> None:
        """Write one result line now; an index that already has its line is not written twice."""
        assert self._handle is not None
        if record["index"] in self.records:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        # Kept before it is written: a SIGTERM or Ctrl-C lands between any two steps here, and
        # the rewrite at close must not drop a line a reader has already seen in the file.
        self.records[record["index"]] = record
        self._handle.write(line.encode("utf-8", "backslashreplace"))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _rewrite(self) -> None:
        lines = [
            json.dumps(self.records[i], ensure_ascii=False) + "\n" for i in sorted(self.records)
        ]
        data = "".join(lines).encode("utf-8", "backslashreplace")
        atomic_write(self.path, data)

    def close(self) -> None:
        """Rewrite in input order (atomically) and release the lock."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._rewrite()
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> ResultsFile:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def error_record(index: int, kind: str, message: str, step: str | None = None) -> dict:
    return {"index": index, "error": {"type": kind, "message": message, "step": step}}
