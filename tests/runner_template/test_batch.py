"""The image program's batch mode: JSON Lines in, one result line per input out."""

import io
import json
import time

import pytest

from runner_template import batch as batch_module
from runner_template.batch import effective_jobs, run_batch
from runner_template.errors import EXIT_OK, EXIT_SOME_FAILED

DOUBLE = {
    "format": 2,
    "workflow": {
        "id": "double",
        "inputs": {"n": {"type": "integer", "required": True}},
        "outputs": {"value": {"source_reference": "steps.d.output"}},
        "steps": [
            {
                "step_id": "d",
                "type": "python_tool",
                "code": "result = n * 2",
                "input_mapping": {"n": "inputs.n"},
            }
        ],
    },
    "tools": {},
}


def batch(lines: list[str] | bytes, bundle=DOUBLE, **options):
    source = io.BytesIO(lines if isinstance(lines, bytes) else "".join(lines).encode())
    sink = io.BytesIO()
    code = run_batch(bundle, source, sink, **options)
    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    return code, {r["index"]: r for r in records}, records


def test_one_line_per_input_and_bad_lines_are_errors_not_the_end():
    code, by_index, records = batch(
        ['{"n": 1}\n', "\n", "not json\n", '{"n": "x"}\n', "[1]\n", '{"n": 4}']
    )
    assert code == EXIT_SOME_FAILED and len(records) == 5
    assert by_index[0] == {"index": 0, "outputs": {"value": 2}}
    assert by_index[1]["error"]["type"] == "bad_input"  # the blank line took no index
    assert "must be of type integer" in by_index[2]["error"]["message"]
    assert by_index[3]["error"]["message"].startswith("inputs must be a JSON object")
    assert by_index[4] == {"index": 4, "outputs": {"value": 8}}


def test_all_good_exits_0_and_indexed_lines_keep_their_indices():
    lines = [json.dumps({"index": i * 10, "inputs": {"n": i}}) + "\n" for i in range(5)]
    code, by_index, _ = batch(lines, indexed=True, jobs=3)
    assert code == EXIT_OK
    assert by_index == {i * 10: {"index": i * 10, "outputs": {"value": 2 * i}} for i in range(5)}
    code, by_index, _ = batch(['{"n": 1}\n'], indexed=True)
    assert code == EXIT_SOME_FAILED and "indexed line" in by_index[0]["error"]["message"]


def test_inputs_of_any_content_arrive_intact():
    text = 'He said "stop" \\ it\'s {fine}\nnew line\ttab é 漢字 🎉\n' * 21000
    echo = json.loads(json.dumps(DOUBLE))
    echo["workflow"]["inputs"] = {"t": {"type": "string"}}
    echo["workflow"]["outputs"] = {"length": {"source_reference": "steps.d.output"}}
    echo["workflow"]["steps"][0].update(code="result = len(t)", input_mapping={"t": "inputs.t"})
    code, by_index, _ = batch([json.dumps({"t": text}, ensure_ascii=False) + "\n"], bundle=echo)
    assert code == EXIT_OK and by_index[0]["outputs"]["length"] == len(text) > 1_000_000


def test_jobs_run_network_bound_inputs_at_once(monkeypatch):
    sleepy = json.loads(json.dumps(DOUBLE))
    sleepy["workflow"]["steps"][0]["code"] = "import time\ntime.sleep(0.3)\nresult = n"
    monkeypatch.setattr(batch_module, "_waits_on_network", lambda bundle: True)
    started = time.monotonic()
    code, _, _ = batch([f'{{"n": {i}}}\n' for i in range(8)], bundle=sleepy, jobs=8)
    assert code == EXIT_OK and time.monotonic() - started < 1.5  # not 8 x 0.3 s


def test_cpu_bound_workflows_get_at_most_one_input_per_cpu(monkeypatch):
    monkeypatch.setattr(batch_module, "available_cpus", lambda: 2)
    assert effective_jobs(16, DOUBLE) == 2
    llm = {**DOUBLE, "tools": {"t": {"kind": "llm", "model": "m"}}}
    assert effective_jobs(16, llm) == 16


def test_an_oversized_line_is_an_error_line(monkeypatch):
    monkeypatch.setattr(batch_module, "MAX_LINE_BYTES", 1000)
    code, by_index, _ = batch(['{"n": 1}\n', '{"n": "' + "x" * 5000 + '"}\n', '{"n": 3}\n'])
    assert code == EXIT_SOME_FAILED
    assert by_index[1]["error"]["message"].startswith("line longer than 1000 bytes")
    assert by_index[2]["outputs"] == {"value": 6}


def test_the_image_program_takes_batches_and_shard_paths(tmp_path):
    import subprocess
    import sys

    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(DOUBLE))
    (tmp_path / "shard-3.jsonl").write_text('{"n": 5}\n{"n": 6}\n')
    env = {"WORKFLOW_BUNDLE": str(bundle), "SLOT": "3"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner_template",
            "--batch",
            "--input-file",
            str(tmp_path / "shard-{shard}.jsonl"),
            "--output-file",
            str(tmp_path / "out-{shard}.jsonl"),
            "--shard-env",
            "SLOT",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "batch: 2 inputs, 2 succeeded, 0 failed" in proc.stderr
    lines = (tmp_path / "out-3.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["outputs"]["value"] for x in lines) == [10, 12]


@pytest.mark.parametrize("slot", ["0", "nodeid7abc"])
def test_swarm_slot_zero_is_shard_zero(tmp_path, slot):
    import subprocess
    import sys

    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(DOUBLE))
    (tmp_path / "shard-0.jsonl").write_text('{"n": 1}\n')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner_template",
            "--batch",
            "--input-file",
            str(tmp_path / "shard-{shard}.jsonl"),
            "--shard-env",
            "SLOT",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"WORKFLOW_BUNDLE": str(bundle), "SLOT": slot},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"index": 0, "outputs": {"value": 2}}


def test_a_number_too_long_is_an_error_line_and_the_batch_goes_on():
    huge = "9" * 5000
    code, by_index, records = batch(['{"n": 1}\n', f'{{"n": {huge}}}\n', '{"n": 3}\n'])
    assert code == EXIT_SOME_FAILED and len(records) == 3
    assert "an integer of 5000 digits" in by_index[1]["error"]["message"]
    assert by_index[0]["outputs"] == {"value": 2} and by_index[2]["outputs"] == {"value": 6}
    code, by_index, _ = batch(
        [f'{{"index": {huge}, "inputs": {{}}}}\n', '{"index": 1, "inputs": {"n": 1}}\n'],
        indexed=True,
    )
    assert by_index[0]["error"]["type"] == "bad_input" and by_index[1]["outputs"] == {"value": 2}


def test_a_result_too_long_to_write_fails_its_input_only():
    big = json.loads(json.dumps(DOUBLE))
    big["workflow"]["steps"][0]["code"] = "result = 10 ** (5000 if n == 2 else 1)"
    code, by_index, _ = batch(['{"n": 1}\n', '{"n": 2}\n', '{"n": 3}\n'], bundle=big)
    assert code == EXIT_SOME_FAILED
    assert by_index[1]["error"]["type"] == "tool_failed"
    assert "more than 4300 digits" in by_index[1]["error"]["message"]
    assert by_index[0]["outputs"] == {"value": 10} and by_index[2]["outputs"] == {"value": 10}


@pytest.mark.parametrize("size", [999, 1000, 1001, 1002, 5000])
def test_an_oversized_line_stays_one_index_whatever_its_size(monkeypatch, size):
    monkeypatch.setattr(batch_module, "MAX_LINE_BYTES", 1000)
    long_line = '{"n": 1, "pad": "' + "x" * (size - 20) + '"}'
    assert len(long_line) == size - 1
    lines = ['{"n": 1}\n', long_line + "\n", '{"n": 3}\n', '{"n": 4}']
    _, by_index, records = batch(lines)  # ``size`` bytes with its newline
    assert len(records) == 4 and by_index[2]["outputs"] == {"value": 6}
    assert by_index[3]["outputs"] == {"value": 8}
    if size - 1 > 1000:  # the newline does not count
        assert by_index[1]["error"]["message"].startswith("line longer than 1000 bytes")
    else:
        assert "pad" in by_index[1]["error"]["message"]  # an unknown input, read whole


def test_a_bom_starts_the_stream_only():
    code, by_index, records = batch(b'\xef\xbb\xbf{"n": 1}\n{"n": 2}\n')
    assert code == EXIT_OK and by_index[0]["outputs"] == {"value": 2} and len(records) == 2
    code, by_index, records = batch(b'\xef\xbb\xbf\n{"n": 2}\n')  # a BOM alone: a blank line
    assert code == EXIT_OK and records == [{"index": 0, "outputs": {"value": 4}}]
    code, by_index, _ = batch(b'{"n": 1}\n\xef\xbb\xbf{"n": 2}\n{"n": 3}\n')
    assert by_index[1]["error"]["type"] == "bad_input"  # U+FEFF inside the stream is text
    assert by_index[0]["outputs"] == {"value": 2} and by_index[2]["outputs"] == {"value": 6}


class _ClosedPipe(io.BytesIO):
    def write(self, data):
        raise BrokenPipeError(32, "Broken pipe")


def test_an_unwritable_sink_stops_the_batch_with_an_os_error():
    source = io.BytesIO(b"".join(b'{"n": %d}\n' % i for i in range(50)))
    with pytest.raises(OSError, match="Broken pipe"):
        run_batch(DOUBLE, source, _ClosedPipe(), jobs=2)
