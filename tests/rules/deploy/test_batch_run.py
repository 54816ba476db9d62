"""The batch loop without a container: inputs that are not JSON objects get their error lines at
once, and a batch with nothing left to run ends with the exit code that says some failed."""

from __future__ import annotations

import json

from rules.deploy.batch.inputs import InputsFile
from rules.deploy.batch.run import run_batch
from rules.deploy.batch.settings import BatchSettings
from runner_template.errors import EXIT_SOME_FAILED


def test_bad_lines_are_results_and_no_container_starts(tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('not json\n\n[1, 2]\n"text"\n')
    output = tmp_path / "out.jsonl"
    code = run_batch("no-such-image:never", InputsFile.scan(inputs), output, BatchSettings())
    assert code == EXIT_SOME_FAILED
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert {line["error"]["type"] for line in lines} == {"bad_input"}
    assert "not valid JSON" in lines[0]["error"]["message"]
    assert "must be a JSON object" in lines[1]["error"]["message"]


def test_a_finished_batch_resumes_to_nothing(tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("oops\n")
    output = tmp_path / "out.jsonl"
    scanned = InputsFile.scan(inputs)
    assert run_batch("no-such-image:never", scanned, output, BatchSettings()) == EXIT_SOME_FAILED
    before = output.read_text()
    assert run_batch("no-such-image:never", scanned, output, BatchSettings()) == EXIT_SOME_FAILED
    assert output.read_text() == before
