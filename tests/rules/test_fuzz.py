"""Fuzzing the loader and the input checks: any bytes in, a result or a clean error out.

In-process (hypothesis, thousands of cases): ``load_workflow`` plus analysis, and the runner's
input parsing and checks, either succeed or raise their one documented error type, each case
within a time bound. Through the real command line (a few dozen cases): exit 0 or 2, one line,
no traceback, under a memory limit and a timeout.
"""

from __future__ import annotations

import json
import resource
import subprocess

import pytest
from helpers import CLI, ROOT, minimal_workflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.errors import InvalidInput
from rules.stages.pipeline import analyze_file
from runner_template.errors import InputError
from runner_template.inputs import prepare_inputs
from runner_template.main import parse_json_inputs

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
KEYS = [
    "workflow_id",
    "steps",
    "inputs",
    "outputs",
    "tools",
    "portable",
    "dependencies",
    "step_id",
    "type",
    "tool",
    "code",
    "input_mapping",
    "timeout",
    "workflow_path",
    "workflow_spec",
    "pattern",
    "default",
    "source_code",
    "requirements",
    "api_spec",
]


@st.composite
def mutated_workflows(draw):
    """A valid workflow with random parts replaced: most cases get past JSON parsing."""
    data = minimal_workflow()
    data["steps"].append({"step_id": "b", "type": "python_tool", "code": "result = 1"})
    parts = [data, *data["steps"], data["inputs"], data["inputs"]["text"]]
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(parts))
        target[draw(st.sampled_from(KEYS))] = draw(JSON)
    return data


def _check_file(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "w.json"
    path.write_bytes(raw)
    try:
        analyze_file(path)
    except InvalidInput as error:
        assert error.problems and all("\n" not in str(p) for p in error.problems)


@settings(
    max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=300))
def test_any_bytes_load_or_fail_cleanly(tmp_path_factory, raw):
    _check_file(tmp_path_factory, raw)


@settings(
    max_examples=600, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=mutated_workflows())
def test_mutated_workflows_load_or_fail_cleanly(tmp_path_factory, data):
    _check_file(tmp_path_factory, json.dumps(data).encode())


@settings(max_examples=1500, deadline=1000)
@given(text=st.text(max_size=200) | JSON.map(json.dumps))
def test_inputs_parse_or_fail_cleanly(text):
    declared = {
        "text": {"type": "string", "pattern": "^[a-z ]*(x+x+)+$"},
        "n": {"type": "integer", "enum": [1, 2, 3]},
        "any": {"type": "any"},
    }
    try:
        prepare_inputs(declared, parse_json_inputs(text, "fuzz"))
    except InputError as error:
        assert error.message and "\n" not in error.message


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


CASES = [
    b"",
    b"\xff\xfe",
    b"{",
    b"[]",
    b"null",
    b'{"workflow_id": 1}',
    b"\xef\xbb\xbf{}",
    b'{"a": ' * 3000,
    b"[" * 100000,
    b'{"steps": [' + b'{"step_id": "x"},' * 5000 + b"{}]}",
    json.dumps(minimal_workflow(workflow_id="a" * 100000)).encode(),
    json.dumps(minimal_workflow(inputs={"text": {"pattern": "(" * 900 + ")" * 900}})).encode(),
    json.dumps(
        minimal_workflow(inputs={"t": {"type": "string", "pattern": "a{1000}{1000}"}})
    ).encode(),
]


@pytest.mark.parametrize("raw", CASES, ids=range(len(CASES)))
def test_the_command_line_stays_bounded(tmp_path, raw):
    path = tmp_path / "w.json"
    path.write_bytes(raw)
    proc = subprocess.run(
        [*CLI, "analyze", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode in (0, 2), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    if proc.returncode == 2:
        assert all(line.startswith("error: ") for line in proc.stderr.strip().splitlines())
