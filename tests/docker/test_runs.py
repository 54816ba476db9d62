"""``docker-workflow run`` through the real engine: the secure defaults, the limits and
variables a user sets, and a workflow with sub-workflows running inside an image."""

from __future__ import annotations

import json

from helpers import write_json

PROBE = """
import os

def first(*paths):
    for path in paths:
        try:
            with open(path) as handle:
                return handle.read().strip()
        except OSError:
            continue
    return None

status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())
try:
    open('/app/written', 'w').close()
    root_writable = True
except OSError:
    root_writable = False
with open('/tmp/scratch', 'w') as handle:
    handle.write('ok')
result = {
    'cap_eff': status['CapEff'].strip(),
    'no_new_privs': status['NoNewPrivs'].strip(),
    'uid': os.getuid(),
    'root_writable': root_writable,
    'memory': first('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'),
    'pids': first('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max'),
    'var': os.environ.get('MY_VAR'),
    'passed': os.environ.get('FROM_HOST'),
}
"""


def probe_workflow() -> dict:
    return {
        "workflow_id": "run-probe",
        "steps": [{"step_id": "probe", "type": "python_tool", "code": PROBE}],
    }


def test_run_is_locked_down_by_default(dw, tmp_path):
    path = write_json(tmp_path / "probe.json", probe_workflow())
    proc = dw("run", str(path), "{}", "--network", "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)["output"]
    assert found["cap_eff"] == "0000000000000000"
    assert found["no_new_privs"] == "1"
    assert found["uid"] == 65532
    assert found["root_writable"] is False
    assert int(found["memory"]) == 512 * 1024 * 1024
    assert found["pids"] == "256"


def test_run_options_change_the_limits_and_pass_variables(dw, tmp_path):
    path = write_json(tmp_path / "probe.json", probe_workflow())
    proc = dw(
        "run",
        str(path),
        "{}",
        "--network",
        "none",
        "--memory",
        "256m",
        "--pids-limit",
        "64",
        "--cpus",
        "1",
        "-e",
        "MY_VAR=hello world",
        "-e",
        "FROM_HOST",
        env={"FROM_HOST": "passed-on"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)["output"]
    assert int(found["memory"]) == 256 * 1024 * 1024 and found["pids"] == "64"
    assert found["var"] == "hello world" and found["passed"] == "passed-on"


def test_bad_run_options_are_input_errors(dw, tmp_path):
    path = write_json(tmp_path / "probe.json", probe_workflow())
    for args in (("--cpus", "-1"), ("-e", "1BAD=x"), ("--pids-limit", "0")):
        proc = dw("run", str(path), "{}", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_a_workflow_with_two_sub_workflows_runs_in_the_image(dw, tmp_path):
    child = {
        "workflow_id": "words",
        "inputs": {"text": {"type": "string", "required": True}},
        "outputs": {"count": {"source_reference": "steps.count.stats.words"}},
        "steps": [
            {
                "step_id": "count",
                "type": "existing_tool",
                "tool": "word_counter",
                "input_mapping": {"text": "inputs.text"},
                "output_name": "stats",
            }
        ],
    }
    write_json(tmp_path / "children" / "words.json", child)
    parent = {
        "workflow_id": "two-children",
        "inputs": {"a": {"type": "string"}, "b": {"type": "string"}},
        "outputs": {
            "a": {"source_reference": "steps.first.out.count"},
            "b": {"source_reference": "steps.second.out.upper"},
        },
        "steps": [
            {
                "step_id": "first",
                "type": "sub_workflow",
                "workflow_path": "children/words.json",
                "input_mapping": {"text": "inputs.a"},
                "output_name": "out",
                "parallel_group": 1,
            },
            {
                "step_id": "second",
                "type": "sub_workflow",
                "output_name": "out",
                "parallel_group": 1,
                "input_mapping": {"t": "inputs.b"},
                "workflow_spec": {
                    "workflow_id": "shout",
                    "inputs": {"t": {"type": "string"}},
                    "outputs": {"upper": {"source_reference": "steps.up.output"}},
                    "steps": [
                        {
                            "step_id": "up",
                            "type": "python_tool",
                            "code": "result = t.upper()",
                            "input_mapping": {"t": "inputs.t"},
                        }
                    ],
                },
            },
        ],
    }
    path = write_json(tmp_path / "parent.json", parent)
    inputs = json.dumps({"a": "one two three", "b": "quiet"})
    for args in (("--local",), ("--network", "none", "--platform", "linux/amd64")):
        proc = dw("run", str(path), inputs, *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout) == {"a": 3, "b": "QUIET"}
