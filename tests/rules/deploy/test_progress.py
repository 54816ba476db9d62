"""A batch's progress away from a terminal: a plain line now and then, and one at the end."""

from __future__ import annotations

from rules.deploy.batch.progress import Progress


def test_plain_progress_counts_done_and_failed(capsys):
    progress = Progress(total=3, already=1)
    progress.record({"index": 1, "outputs": {}})
    progress.record({"index": 2, "error": {"type": "tool_failed"}})
    progress.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("batch:")]
    assert lines[-1].startswith("batch: 3/3 done, 1 failed, ")
    assert progress.new == 2 and progress.rate() > 0
