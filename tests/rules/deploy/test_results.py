"""The batch results file: append, resume, retry failed, drop torn lines, one writer."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.deploy.batch.inputs import InputsFile, split
from rules.deploy.batch.results import ResultsFile
from rules.errors import InputProblem, UserError


def ok(i):
    return {"index": i, "outputs": {"v": i}}


def failed(i):
    return {"index": i, "error": {"type": "tool_failed", "message": "x", "step": "s"}}


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_results_end_in_input_order_and_resume_skips_done(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsFile(path, "d1") as results:
        for i in (3, 0, 2):
            results.append(ok(i))
        results.append(ok(3))  # a duplicate is never written twice
    assert [r["index"] for r in lines(path)] == [0, 2, 3]
    with ResultsFile(path, "d1") as again:
        assert again.done() == {0, 2, 3}
        again.append(ok(1))
    assert [r["index"] for r in lines(path)] == [0, 1, 2, 3]


def test_a_torn_last_line_is_dropped_and_failed_ones_can_be_retried(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsFile(path, "d") as results:
        results.append(ok(0))
        results.append(failed(1))
    with path.open("ab") as handle:
        handle.write(b'{"index": 2, "outp')  # what a crash mid-write leaves
    with ResultsFile(path, "d") as again:
        assert again.done() == {0, 1}
    assert b'"index": 2' not in path.read_bytes()
    with ResultsFile(path, "d", retry_failed=True) as retry:
        assert retry.done() == {0}
        retry.append(ok(1))
    assert lines(path) == [ok(0), ok(1)]


def test_other_inputs_and_a_second_writer_are_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsFile(path, "d") as results:
        results.append(ok(0))
        with pytest.raises(UserError, match="another batch is writing"):
            ResultsFile(path, "d").open()
    with pytest.raises(InputProblem, match="results of other inputs"):
        ResultsFile(path, "other").open()


def test_inputs_file_indexes_non_blank_lines_and_finds_bad_ones(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n  \nnot json\n[1]\n{"a": "\xff"}\n{"b": 2}')
    found = InputsFile.scan(path)
    assert [line.index for line in found.lines] == [0, 1, 2, 3, 4]
    assert set(found.bad) == {1, 2, 3}
    assert list(found.indexed([0, 4])) == [
        b'{"index": 0, "inputs": {"a": 1}}\n',
        b'{"index": 4, "inputs": {"b": 2}}\n',
    ]


def test_split_is_contiguous_and_balanced():
    assert split(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split([1, 2], 5) == [[1], [2]]


def test_swarm_engine_needs_a_swarm_manager():
    from rules.deploy.batch.swarm import _require_manager

    class Engine:
        def __init__(self, state, control):
            self.state, self.control = state, control

        def info(self):
            return {"Swarm": {"LocalNodeState": self.state, "ControlAvailable": self.control}}

    for state, control in (("inactive", False), ("active", False)):
        with pytest.raises(UserError, match="docker swarm init"):
            _require_manager(Engine(state, control))
    _require_manager(Engine("active", True))


def test_a_bom_on_the_first_line_is_not_sent_with_input_0(tmp_path):
    """The engine's batch reader drops a BOM at the start of the stream: so does the host
    scan, and the line sent as input 0 is the JSON without it. A U+FEFF elsewhere is text."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\xef\xbb\xbf{"a": 2}\n')
    found = InputsFile.scan(path)
    assert [line.index for line in found.lines] == [0, 1]
    assert set(found.bad) == {1}
    assert found.read(found.lines[0]) == b'{"a": 1}'
    assert list(found.indexed([0])) == [b'{"index": 0, "inputs": {"a": 1}}\n']


def test_a_line_over_the_limit_is_one_index_and_later_ones_keep_theirs(tmp_path):
    from runner_template.batch import MAX_LINE_BYTES

    path = tmp_path / "in.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"a": 0}\n{"a": "')
        handle.write(b"x" * (2 * MAX_LINE_BYTES + 10))
        handle.write(b'"}\n{"a": 2}\n')
    found = InputsFile.scan(path)
    assert [line.index for line in found.lines] == [0, 1, 2]
    assert found.bad == {1: f"line longer than {MAX_LINE_BYTES} bytes"}
    assert found.read(found.lines[2]) == b'{"a": 2}'


def test_an_integer_of_too_many_digits_is_that_lines_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": ' + b"9" * 5000 + b'}\n{"a": 1}\n')
    found = InputsFile.scan(path)
    assert list(found.bad) == [0]
    assert "5000 digits" in found.bad[0]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"index": "1", "outputs": {}}', r"line 2: \$\.index: must be a non-negative integer"),
        (b'{"index": 1.5, "outputs": {}}', r"line 2: \$\.index: must be"),
        (b'{"index": true, "outputs": {}}', r"line 2: \$\.index: must be"),
        (b'{"index": -1, "outputs": {}}', r"line 2: \$\.index: must be"),
        (b'{"index": ' + b"[" * 5000 + b"]" * 5000 + b"}", r"line 2: .*nested more than"),
        (b'{"index": ' + b"9" * 5000 + b"}", r"line 2: .*5000 digits"),
        (b'[{"index": 1}]', r"line 2: \$: a result must be a JSON object"),
        (b"not json", r"line 2: not valid JSON"),
    ],
)
def test_a_results_line_that_is_not_a_result_is_refused_in_one_line(tmp_path, line, problem):
    path = tmp_path / "r.jsonl"
    with ResultsFile(path, "d") as results:
        results.append(ok(0))
    with path.open("ab") as handle:
        handle.write(line + b"\n")
    with pytest.raises(InputProblem, match=problem) as caught:
        ResultsFile(path, "d").open()
    assert "\n" not in str(caught.value)
    with ResultsFile(path.with_name("other.jsonl"), "d"):
        pass
    # The lock was released: fixing the file lets the batch resume.
    path.write_text(json.dumps(ok(0)) + "\n")
    with ResultsFile(path, "d") as again:
        assert again.done() == {0}


_LINE_PARTS = st.sampled_from(
    [b'{"a": 1}', b"\xef\xbb\xbf", b"\n", b"\r\n", b"  ", b"[", b"]", b'"\xff"', b"9" * 4400,
     b'{"index": 1}', b'{"index": true}', b"null", b"\x00", b"{"]
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(_LINE_PARTS | st.binary(max_size=12), max_size=30))
def test_any_bytes_as_inputs_or_results_index_cleanly_or_fail_in_one_line(tmp_path, parts):
    """Inputs: never an exception, one index per non-blank line, in order, each line's bytes
    read back. Results: a resumable file or one InputProblem line, never a crash."""
    data = b"".join(parts)
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    found = InputsFile.scan(path)
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    lines = [line for line in body.split(b"\n") if line.strip()]  # JSON Lines ends lines at LF
    assert [line.index for line in found.lines] == list(range(len(lines)))
    assert [found.read(line) for line in found.lines] == [line.strip() for line in lines]
    results = tmp_path / "r.jsonl"
    results.write_bytes(data)
    (tmp_path / "r.jsonl.state.json").write_text(json.dumps({"inputs": "d"}))
    try:
        with ResultsFile(results, "d") as opened:
            assert all(isinstance(i, int) and i >= 0 for i in opened.done())
    except InputProblem as error:
        assert "\n" not in str(error) and str(error).startswith(f"{results}: line ")
