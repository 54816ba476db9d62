"""A batch's progress on stderr: a rich bar on a terminal, a plain line now and then if not."""

from __future__ import annotations

import time
from typing import Any

from rules.console import err_console


class Progress:
    """done / failed / rate / ETA: a rich bar on a terminal, a plain line now and then if not."""

    def __init__(self, total: int, already: int) -> None:
        self.total = total
        self.done = already
        self.failed = 0
        self.started = time.monotonic()
        self.new = 0
        self._last_line = 0.0
        self._bar = None
        if err_console().is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("batch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed, {task.fields[rate]}/s"),
                TimeRemainingColumn(),
                console=err_console(),
            )
            self._task = self._bar.add_task(
                "batch", total=total, completed=already, failed=0, rate="0.0"
            )
            self._bar.start()

    def rate(self) -> float:
        seconds = time.monotonic() - self.started
        return self.new / seconds if seconds > 0 else 0.0

    def record(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.new += 1
        self.failed += "error" in record
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, failed=self.failed, rate=f"{self.rate():.1f}"
            )
        elif time.monotonic() - self._last_line > 5 or self.done == self.total:
            self._last_line = time.monotonic()
            self.line()

    def line(self) -> None:
        remaining = self.total - self.done
        rate = self.rate()
        eta = f", about {remaining / rate:.0f} s left" if rate > 0 and remaining else ""
        err_console().print(
            f"batch: {self.done}/{self.total} done, {self.failed} failed, {rate:.1f}/s{eta}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self.line()
